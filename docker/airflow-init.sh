#!/usr/bin/env bash
# One-shot set-up of a production deployment, run by compose's airflow-init service before anything else:
# migrate Airflow's metadata DB (FAB's user and role tables included), create the FAB admin user if it does
# not exist yet, and create the object store's bucket. Safe to run again: each step skips what exists.
set -euo pipefail

airflow db migrate

admin_exists='import json, os, sys
sys.exit(all(user["username"] != os.environ["AIRFLOW_ADMIN_USERNAME"] for user in json.load(sys.stdin)))'
if airflow users list --output json | python -c "$admin_exists"; then
    echo "FAB admin user $AIRFLOW_ADMIN_USERNAME exists"
else
    airflow users create --role Admin --username "$AIRFLOW_ADMIN_USERNAME" \
        --password "$AIRFLOW_ADMIN_PASSWORD" --email "$AIRFLOW_ADMIN_EMAIL" \
        --firstname "$AIRFLOW_ADMIN_USERNAME" --lastname admin
fi

python - <<'PY'
import os
from urllib.parse import urlparse

import boto3
from botocore.config import Config

bucket = urlparse(os.environ["PZ_STORAGE_URL"]).netloc
# Endpoint and credentials come from AWS_ENDPOINT_URL and AWS_*; an S3-compatible store behind a service
# name has no bucket sub-domains, hence path-style addressing.
s3 = boto3.client("s3", config=Config(s3={"addressing_style": "path"}))
if bucket in {entry["Name"] for entry in s3.list_buckets().get("Buckets", [])}:
    print(f"bucket {bucket} exists")
else:
    s3.create_bucket(Bucket=bucket)
    print(f"created bucket {bucket}")
PY
