// Progressive enhancement for the openpersonalize console: every page works without it.
// Draws the charts (Plotly, loaded on pages that have them), refreshes a page while something
// on it is in progress, shows only the chosen filter's values, and asks before a delete.
"use strict";

function chartData() {
  const node = document.getElementById("chart-data");
  return node ? JSON.parse(node.textContent) : null;
}

function withPlotly(draw) {
  if (window.Plotly) draw(); // loaded by the pages that have charts
}

const LAYOUT = { margin: { t: 30, r: 20, b: 20, l: 60 }, legend: { orientation: "h", y: 1.15 },
  font: { family: "system-ui, sans-serif", size: 12 } };

function drawCharts() {
  const data = chartData();
  if (!data || !document.querySelector("[data-chart]")) return;
  withPlotly(function () {
    const metrics = document.getElementById("metrics-chart");
    if (metrics && data.versions) {
      const traces = data.versions.map(function (v) {
        return { type: "bar", name: v.label, x: data.metrics, y: v.values,
          marker: v.current ? { line: { width: 2, color: "#111" } } : {} };
      });
      Plotly.react(metrics, traces, Object.assign({ barmode: "group", height: 460,
        xaxis: { automargin: true, tickangle: -35 }, yaxis: { title: { text: "value" } } },
        LAYOUT), { displaylogo: false, responsive: true });
    }
    const trials = document.getElementById("trials-chart");
    if (trials && data.trials && data.trials.values) {
      Plotly.react(trials, [{ type: "scatter", mode: "lines+markers", x: data.trials.numbers,
        y: data.trials.values, text: data.trials.labels, name: data.trials.metric }],
        Object.assign({ xaxis: { title: { text: "trial" } },
          yaxis: { title: { text: data.trials.metric } } }, LAYOUT), { displaylogo: false });
    }
    const parameters = document.getElementById("parameters-chart");
    if (parameters && data.trials && data.trials.parameters) {
      const names = Object.keys(data.trials.parameters);
      const traces = names.map(function (name, i) {
        return { type: "scatter", mode: "markers", name: name, x: data.trials.parameters[name],
          y: data.trials.values, xaxis: "x" + (i ? i + 1 : ""), yaxis: "y" + (i ? i + 1 : "") };
      });
      const layout = Object.assign({ grid: { rows: 1, columns: Math.max(names.length, 1),
        pattern: "independent" } }, LAYOUT);
      names.forEach(function (name, i) {
        layout["xaxis" + (i ? i + 1 : "")] = { title: { text: name } };
      });
      if (names.length) Plotly.react(parameters, traces, layout, { displaylogo: false });
    }
  });
}

function showFilterValues() {
  const select = document.getElementById("try-filter");
  if (!select) return;
  const option = select.options[select.selectedIndex];
  const wanted = (option && option.dataset.placeholders || "").split(",").filter(Boolean);
  document.querySelectorAll(".filter-value").forEach(function (label) {
    const show = wanted.indexOf(label.dataset.placeholder) >= 0;
    label.hidden = !show;
    label.querySelector("input").disabled = !show;
  });
}

function enhance() {
  drawCharts();
  showFilterValues();
  const select = document.getElementById("try-filter");
  if (select) select.addEventListener("change", showFilterValues);
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });
}

// While something is in progress, fetch the page again and swap its content in place.
function refreshLater() {
  const main = document.getElementById("main");
  if (!main || !main.dataset.refresh) return;
  window.setTimeout(function () {
    if (document.activeElement && document.activeElement.form) { refreshLater(); return; }
    fetch(window.location.href, { credentials: "same-origin" })
      .then(function (reply) { return reply.ok ? reply.text() : null; })
      .then(function (text) {
        if (text === null) return;
        const fresh = new DOMParser().parseFromString(text, "text/html").getElementById("main");
        if (!fresh) return;
        main.innerHTML = fresh.innerHTML;
        if (fresh.dataset.refresh) main.dataset.refresh = fresh.dataset.refresh;
        else delete main.dataset.refresh;
        enhance();
        refreshLater();
      });
  }, 1000 * Number(main.dataset.refresh));
}

document.addEventListener("DOMContentLoaded", function () { enhance(); refreshLater(); });
