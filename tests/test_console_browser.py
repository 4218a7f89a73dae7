"""The web console in a real browser: headless Chromium (Debian's chromium and
chromium-driver, which `make test` installs) driven through Selenium.

One server for the module, with one small dataset group (seeded clicks, items with titles,
genres and prices), two trained versions of fast recipes and one campaign; a second server
with access keys for the login. Each test saves a screenshot of the page it checks to
docs/console/, which the README shows.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np
import pytest
from helpers import (
    active_campaign,
    active_dataset,
    active_group,
    avro_schema,
    require_service,
    run_import,
    schema,
    unique,
)

from openpersonalize.testing.server import ServerProcess, wait_for_status

SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "console"
CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
WAIT_SECONDS = 60
KEY, SECRET = "AKIDBROWSER", "browser-secret-for-tests"
GENRES = ("drama", "comedy", "action", "family")
ITEMS_SCHEMA = avro_schema(
    "Items",
    ("ITEM_ID", "string"),
    {"name": "TITLE", "type": "string", "categorical": True},
    {"name": "GENRES", "type": "string", "categorical": True},
    ("PRICE", "float"),
)


def interactions_csv(seed: int = 0) -> str:
    """200 users in 4 taste groups, 25 clicks each on items of their group's genre."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(200):
        for step in range(25):
            item = (user % 4) * 25 + int(rng.integers(0, 25))
            rows.append(f"u{user},i{item},{1_700_000_000 + user * 100 + step},click")
    return "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE\n" + "\n".join(rows) + "\n"


def items_csv() -> str:
    return "ITEM_ID,TITLE,GENRES,PRICE\n" + "".join(
        f"i{i},Movie number {i},{GENRES[i // 25]},{5 + i % 7}.99\n" for i in range(100)
    )


def _browser_binaries() -> tuple[str | None, str | None]:
    browser = next((path for name in CHROMIUM if (path := shutil.which(name))), None)
    return browser, shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    binary, driver_path = _browser_binaries()
    require_service(
        importlib.util.find_spec("selenium") is not None,
        "selenium is not installed (pip install -e '.[dev]')",
    )
    require_service(
        binary is not None and driver_path is not None,
        "Chromium or chromedriver is missing (apt-get install chromium chromium-driver)",
    )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(binary)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # tests run as root in containers
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,1400",
        "--no-first-run",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(str(driver_path)))
    driver.set_page_load_timeout(WAIT_SECONDS)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("console-browser")
    s3_root = root / "s3"
    with ServerProcess(
        root / "server", settings={"s3_local_root": str(s3_root), "workers": "2"}
    ) as running:
        yield running


@pytest.fixture(scope="module")
def seeded(console_server: ServerProcess) -> dict[str, str]:
    """The group, its two ACTIVE versions (popularity, user-personalization), a campaign of
    the latter, a filter per genre value and one excluding clicked items, an event tracker,
    and a second group whose import failed."""
    client = console_server.client()
    bucket = Path(console_server.settings["s3_local_root"]) / "console"
    bucket.mkdir(parents=True, exist_ok=True)
    (bucket / "interactions.csv").write_text(interactions_csv())
    (bucket / "items.csv").write_text(items_csv())
    group = active_group(client, name=unique("movies"))
    interactions = active_dataset(client, group, schema(client))
    items = active_dataset(client, group, schema(client, ITEMS_SCHEMA), "Items")
    for dataset, name in ((interactions, "interactions.csv"), (items, "items.csv")):
        job = run_import(client, dataset, f"s3://console/{name}")
        assert job["status"] == "ACTIVE", job
    # Both trained at once (two job workers).
    popular, personal = _train(
        client,
        group,
        {"recipeArn": "arn:aws:personalize:::recipe/aws-popularity-count"},
        {
            "recipeArn": "arn:aws:personalize:::recipe/aws-user-personalization",
            "performHPO": True,
            "solutionConfig": {
                "hpoConfig": {
                    "hpoResourceConfig": {
                        "maxNumberOfTrainingJobs": "3",
                        "maxParallelTrainingJobs": "1",
                    },
                    "algorithmHyperParameterRanges": {
                        "integerHyperParameterRanges": [
                            {"name": "hidden_dimension", "minValue": 32, "maxValue": 96}
                        ]
                    },
                }
            },
        },
    )
    campaign = active_campaign(client, personal)
    genre = client.create_filter(
        name=unique("genre"),
        datasetGroupArn=group,
        filterExpression="INCLUDE ItemID WHERE Items.GENRES IN ($GENRE)",
    )["filterArn"]
    unclicked = client.create_filter(
        name=unique("unclicked"),
        datasetGroupArn=group,
        filterExpression='EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click")',
    )["filterArn"]
    for arn in (genre, unclicked):
        status = wait_for_status(client.describe_filter, "filter", "filterArn", arn)
        assert status["status"] == "ACTIVE", status
    tracker = client.create_event_tracker(name=unique("tracker"), datasetGroupArn=group)
    wait_for_status(
        client.describe_event_tracker, "eventTracker", "eventTrackerArn", tracker["eventTrackerArn"]
    )
    (bucket / "broken.csv").write_text(
        "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE\nu1,i1,1700000000,click\nu2,i2,yesterday,click\n"
    )
    broken_group = active_group(client, name=unique("broken"))
    broken_dataset = active_dataset(client, broken_group, schema(client))
    failed = run_import(client, broken_dataset, "s3://console/broken.csv")
    assert failed["status"] == "CREATE FAILED", failed
    return {
        "group": group,
        "popular": popular,
        "personal": personal,
        "campaign": campaign,
        "genre": genre,
        "unclicked": unclicked,
        "broken_group": broken_group,
        "failure": failed["failureReason"],
    }


def _train(client: Any, group: str, *solutions: dict[str, Any]) -> list[str]:
    """A first version of each solution, trained side by side to ACTIVE."""
    versions = []
    for solution in solutions:
        arn = client.create_solution(name=unique("sol"), datasetGroupArn=group, **solution)[
            "solutionArn"
        ]
        versions.append(client.create_solution_version(solutionArn=arn)["solutionVersionArn"])
    for version in versions:
        final = wait_for_status(
            client.describe_solution_version,
            "solutionVersion",
            "solutionVersionArn",
            version,
            timeout=300,
        )
        assert final["status"] == "ACTIVE", final.get("failureReason")
    return versions


def _url(server: ServerProcess, page: str = "", **query: str) -> str:
    return f"{server.endpoint_url}/console{page}" + (f"?{urlencode(query)}" if query else "")


def _wait(browser: Any, condition: Any, timeout: float = WAIT_SECONDS) -> Any:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # A page being replaced (a form sent, a refresh) leaves stale elements for a moment.
    return WebDriverWait(
        browser,
        timeout,
        poll_frequency=0.1,
        ignored_exceptions=(StaleElementReferenceException,),
    ).until(condition)


def _shot(browser: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def _listed_items(browser: Any) -> list[str]:
    from selenium.webdriver.common.by import By

    return [
        row.get_attribute("data-item-id")
        for row in browser.find_elements(By.CSS_SELECTOR, "#recommendations tr.recommendation")
    ]


def test_group_to_metrics_chart(browser: Any, console_server: ServerProcess, seeded: dict) -> None:
    from selenium.webdriver.common.by import By

    browser.get(_url(console_server))
    group_name = seeded["group"].rsplit("/", 1)[1]
    _shot(browser, "dataset-groups")
    browser.find_element(By.LINK_TEXT, group_name).click()
    _wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#datasets .dataset"))
    counts = {
        card.get_attribute("data-type"): card.find_element(By.CSS_SELECTOR, ".row-count").text
        for card in browser.find_elements(By.CSS_SELECTOR, "#datasets .dataset")
    }
    assert counts == {"Interactions": "5,000", "Items": "100"}
    fields = browser.find_element(By.CSS_SELECTOR, '[data-type="Items"] table.schema').text
    assert "TITLE" in fields and "categorical" in fields
    _shot(browser, "dataset-group")
    version_id = seeded["personal"].rsplit("/", 1)[1]
    browser.find_element(By.LINK_TEXT, version_id).click()
    # Plotly drew a bar per version and metric: both versions, every metric.
    chart = _wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#metrics-chart .main-svg"))
    assert chart
    legend = browser.find_element(By.CSS_SELECTOR, "#metrics-chart .legend").text
    assert "aws-user-personalization" in legend and "aws-popularity-count" in legend
    ticks = browser.find_element(By.CSS_SELECTOR, "#metrics-chart .xaxislayer-above").text
    for metric in ("coverage", "precision_at_10", "normalized_discounted_cumulative_gain_at_25"):
        assert metric in ticks
    bars = browser.find_elements(By.CSS_SELECTOR, "#metrics-chart .trace.bars")
    assert len(bars) == 2
    table = browser.find_element(By.CSS_SELECTOR, "table.metrics-table").text
    assert "recall" in table or "hit_rate" in table, table  # our extra measures beside
    assert browser.find_element(By.ID, "recipe").text == "aws-user-personalization"
    tuned = browser.find_element(By.ID, "tuned").text
    assert "hidden_dimension" in tuned
    # The HPO trials: the objective of each, and the tuned parameter against it.
    points = browser.find_elements(By.CSS_SELECTOR, "#trials-chart .scatterlayer .point")
    assert len(points) == 3
    assert "hidden_dimension" in browser.find_element(By.ID, "parameters-chart").text
    rows = browser.find_elements(By.CSS_SELECTOR, "#trials tbody tr")
    assert len(rows) == 3
    _shot(browser, "solution-version")


def test_try_it_with_filter_values(
    browser: Any, console_server: ServerProcess, seeded: dict
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(_url(console_server, "/campaign", arn=seeded["campaign"]))
    browser.find_element(By.ID, "try-user").send_keys("u1")
    Select(browser.find_element(By.ID, "try-filter")).select_by_value(seeded["genre"])
    value = browser.find_element(By.ID, "fv-GENRE")
    assert value.is_displayed()  # the chosen filter's placeholder
    Select(browser.find_element(By.ID, "try-filter")).select_by_value(seeded["unclicked"])
    assert not value.is_displayed()  # not another filter's
    Select(browser.find_element(By.ID, "try-filter")).select_by_value(seeded["genre"])
    value.send_keys('"comedy"')
    browser.find_element(By.ID, "try-submit").click()
    _wait(browser, lambda b: len(_listed_items(b)) == 10)
    rows = browser.find_elements(By.CSS_SELECTOR, "#recommendations tr.recommendation")
    headers = browser.find_element(By.CSS_SELECTOR, "#recommendations thead").text
    assert "TITLE" in headers and "GENRES" in headers and "PRICE" in headers
    for row in rows:
        item = row.get_attribute("data-item-id")
        cells = [cell.text for cell in row.find_elements(By.CSS_SELECTOR, "td.metadata")]
        number = int(item[1:])
        assert cells == [f"Movie number {number}", "comedy", f"{5 + number % 7}.99"], cells
        assert 25 <= number < 50


def test_event_changes_the_list(browser: Any, console_server: ServerProcess, seeded: dict) -> None:
    from selenium.webdriver.common.by import By

    browser.get(
        _url(
            console_server,
            "/campaign",
            arn=seeded["campaign"],
            userId="u7",
            filterArn=seeded["unclicked"],
        )
    )
    before = _wait(browser, lambda b: _listed_items(b))
    top = before[0]
    browser.find_element(By.CSS_SELECTOR, f'tr[data-item-id="{top}"] .send-click').click()
    # Waited for by what it changes: the old page may still be showing for a moment.
    _wait(
        browser,
        lambda b: (
            b.find_elements(By.CSS_SELECTOR, "#user-events")
            and (listed := _listed_items(b))
            and top not in listed
        ),
    )
    after = _listed_items(browser)
    assert top not in after and after != before  # clicked: the filter now leaves it out
    assert top in browser.find_element(By.ID, "user-events").text
    # The general form sends any item; the list moves again.
    browser.find_element(By.ID, "event-item").send_keys(after[0])
    browser.find_element(By.ID, "event-submit").click()
    _wait(browser, lambda b: after[0] not in _listed_items(b))
    _shot(browser, "campaign-try-it")


def test_create_campaign_from_version(
    browser: Any, console_server: ServerProcess, seeded: dict
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(_url(console_server, "/version", arn=seeded["popular"]))
    name = unique("from-console")
    browser.find_element(By.ID, "campaign-name").send_keys(name)
    browser.find_element(By.CSS_SELECTOR, "#create-campaign button").click()
    _wait(browser, lambda b: name in b.find_element(By.TAG_NAME, "h1").text)
    assert "Campaign created" in browser.find_element(By.CSS_SELECTOR, ".notice").text
    # The page refreshes itself until the deploy ends.
    _wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "h1 .status-active"))
    campaigns = console_server.client().list_campaigns()["campaigns"]
    (made,) = [c for c in campaigns if c["name"] == name]
    described = console_server.client().describe_campaign(campaignArn=made["campaignArn"])
    assert described["campaign"]["solutionVersionArn"] == seeded["popular"]
    # The same name again: the API's refusal, shown on the version page.
    browser.get(_url(console_server, "/version", arn=seeded["popular"]))
    browser.find_element(By.ID, "campaign-name").send_keys(name)
    browser.find_element(By.CSS_SELECTOR, "#create-campaign button").click()
    error = _wait(browser, lambda b: b.find_elements(By.ID, "action-error"))[0].text
    assert "ResourceAlreadyExistsException" in error and name in error
    # Switch it to the other version, from that version's page.
    browser.get(_url(console_server, "/version", arn=seeded["personal"]))
    Select(browser.find_element(By.CSS_SELECTOR, "#update-campaign select")).select_by_value(
        made["campaignArn"]
    )
    browser.find_element(By.CSS_SELECTOR, "#update-campaign button").click()
    notice = _wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, ".notice"))[0].text
    assert "update started" in notice
    update = console_server.client().describe_campaign(campaignArn=made["campaignArn"])
    assert update["campaign"]["latestCampaignUpdate"]["solutionVersionArn"] == seeded["personal"]


def test_stop_a_training_version(browser: Any, console_server: ServerProcess, seeded: dict) -> None:
    from selenium.webdriver.common.by import By

    client = console_server.client()
    solution = seeded["personal"].rsplit("/", 1)[0]
    version = client.create_solution_version(solutionArn=solution)["solutionVersionArn"]
    browser.get(_url(console_server, "/version", arn=version))
    browser.find_element(By.CSS_SELECTOR, "#stop-version button").click()
    notice = _wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, ".notice"))[0].text
    assert "Stop requested" in notice
    # A new client: the first one's idle connection may have been closed by the server
    # (keep-alive timeout) while the browser worked, and the test clients do not retry.
    client = console_server.client()
    final = wait_for_status(
        client.describe_solution_version,
        "solutionVersion",
        "solutionVersionArn",
        version,
        statuses=("CREATE STOPPED",),
        timeout=60,
    )
    assert final["status"] == "CREATE STOPPED", final
    # The page follows it there by itself, and offers no stop any more.
    _wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "h1 .status-create-stopped"))
    assert not browser.find_elements(By.ID, "stop-version")


def test_failed_import_shows_its_reason(
    browser: Any, console_server: ServerProcess, seeded: dict
) -> None:
    from selenium.webdriver.common.by import By

    browser.get(_url(console_server, "/group", arn=seeded["broken_group"]))
    row = browser.find_element(By.CSS_SELECTOR, "tr.import-job")
    assert row.get_attribute("data-status") == "CREATE FAILED"
    shown = row.find_element(By.CSS_SELECTOR, ".failure-reason").text
    assert shown == seeded["failure"] and "broken.csv" in shown
    _shot(browser, "failed-import")


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    settings = {"access_key_id": KEY, "secret_access_key": SECRET, "workers": "1"}
    with ServerProcess(
        tmp_path_factory.mktemp("console-keys"),
        settings=settings,
        access_key_id=KEY,
        secret_access_key=SECRET,
    ) as running:
        running.client().create_dataset_group(name="behind-login")
        yield running


def test_login_with_keys(browser: Any, secured: ServerProcess) -> None:
    from selenium.webdriver.common.by import By

    browser.delete_all_cookies()
    browser.get(_url(secured))
    _wait(browser, lambda b: b.find_elements(By.ID, "login-form"))
    assert "behind-login" not in browser.page_source
    browser.find_element(By.ID, "accessKeyId").send_keys(KEY)
    browser.find_element(By.ID, "secretAccessKey").send_keys("not-the-secret")
    browser.find_element(By.CSS_SELECTOR, "#login-form button").click()
    error = _wait(browser, lambda b: b.find_elements(By.ID, "login-error"))[0].text
    assert "not right" in error
    assert "behind-login" not in browser.page_source
    _shot(browser, "login")
    browser.find_element(By.ID, "accessKeyId").clear()
    browser.find_element(By.ID, "accessKeyId").send_keys(KEY)
    browser.find_element(By.ID, "secretAccessKey").send_keys(SECRET)
    browser.find_element(By.CSS_SELECTOR, "#login-form button").click()
    _wait(browser, lambda b: b.find_elements(By.LINK_TEXT, "behind-login"))
    cookie = browser.get_cookie("openpersonalize_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    browser.find_element(By.CSS_SELECTOR, ".logout button").click()
    _wait(browser, lambda b: b.find_elements(By.ID, "login-form"))
    browser.get(_url(secured))
    assert browser.find_elements(By.ID, "login-form")
