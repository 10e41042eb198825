#!/usr/bin/env bash
# First start of the Postgres volume only (docker-entrypoint-initdb.d): the PZ Server registry gets its own
# role and database next to Airflow's metadata DB.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v registry_password="$PZ_REGISTRY_PASSWORD" <<'SQL'
CREATE ROLE pz_registry LOGIN PASSWORD :'registry_password';
CREATE DATABASE pz_registry OWNER pz_registry;
SQL
