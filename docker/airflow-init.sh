#!/usr/bin/env bash
# One-shot set-up of a production deployment, run before the Airflow services start: by compose's airflow-init
# service, and by scripts/airflow/up.sh with PZ_PROFILE=production. Migrates Airflow's metadata DB (FAB's user
# and role tables included), creates the FAB admin user if it does not exist yet, gives the FAB roles their
# permissions (Admin and Op are FAB's own; pz-user is ours, below) and creates the products' bucket. Safe to
# run again: each step skips what exists.
#
# AIRFLOW_ADMIN_USERNAME, AIRFLOW_ADMIN_PASSWORD, AIRFLOW_ADMIN_EMAIL  the FAB admin made on the first run
# PZ_STORAGE_URL, PZ_S3_*  the products' store (pzlib's settings): its bucket is made when missing
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

# pz-user: a scientist of the PZ Server. Sees everything a FAB Viewer sees and the PZ Server pages (the
# plugin's menu entries), and may trigger the cross-match DAGs (Training Set Maker, Combine Redshift
# Catalogs) but change no other DAG (pz_compute is the Op's and the Admin's), nor connections, variables,
# pools or users. Permissions are added, never taken away, so an admin's additions stay.
python - <<'PY'
from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder

CROSSMATCH_DAGS = ("training_set_maker", "combine_redshift_catalogs")
with get_application_builder() as appbuilder:
    security = appbuilder.sm
    permissions = [*security.VIEWER_PERMISSIONS, ("can_read", "Plugins"), ("menu_access", "Plugins")]
    for dag_id in CROSSMATCH_DAGS:
        permissions += [("can_edit", f"DAG:{dag_id}"), ("can_create", f"DAG Run:{dag_id}")]
    security.bulk_sync_roles([{"role": "pz-user", "perms": permissions}])
    print(f"FAB role pz-user: {len(permissions)} permissions")
PY

python - <<'PY'
from urllib.parse import urlparse

from pzlib.config import load_settings
from pzlib.storage.s3_access import S3Access

settings = load_settings()
bucket = urlparse(settings.storage_url).netloc
s3 = S3Access.from_settings(settings).boto3_client()
if bucket in {entry["Name"] for entry in s3.list_buckets().get("Buckets", [])}:
    print(f"bucket {bucket} exists")
else:
    s3.create_bucket(Bucket=bucket)
    print(f"created bucket {bucket}")
PY
