"""The control plane (service `personalize`, JSON 1.1): operation name -> resource function."""

from __future__ import annotations

from openpersonalize.resources import dataset_groups, dataset_import_jobs, datasets, schemas, tags

OPERATIONS = {
    "CreateDatasetGroup": dataset_groups.create,
    "DescribeDatasetGroup": dataset_groups.describe,
    "ListDatasetGroups": dataset_groups.list_,
    "DeleteDatasetGroup": dataset_groups.delete,
    "CreateSchema": schemas.create,
    "DescribeSchema": schemas.describe,
    "ListSchemas": schemas.list_,
    "DeleteSchema": schemas.delete,
    "CreateDataset": datasets.create,
    "DescribeDataset": datasets.describe,
    "ListDatasets": datasets.list_,
    "DeleteDataset": datasets.delete,
    "UpdateDataset": datasets.update,
    "CreateDatasetImportJob": dataset_import_jobs.create,
    "DescribeDatasetImportJob": dataset_import_jobs.describe,
    "ListDatasetImportJobs": dataset_import_jobs.list_,
    "TagResource": tags.tag_resource,
    "UntagResource": tags.untag_resource,
    "ListTagsForResource": tags.list_tags,
}
