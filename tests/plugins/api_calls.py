"""Calls the PZ Server tests make as the pzserver client makes them, and tables of every format to upload."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

API = "/pzserver/api"
"""Base path of the API, as the pzserver client sees it below the Airflow URL."""


def specz_table(rows: int = 25) -> pa.Table:
    """A small spec-z catalog: id, ra, dec, z, z_err."""
    index = np.arange(rows)
    return pa.table(
        {
            "id": index,
            "ra": 10.0 + index * 0.01,
            "dec": -5.0 - index * 0.01,
            "z": 0.1 + index / 100,
            "z_err": np.full(rows, 0.001),
        }
    )


def table_bytes(table: pa.Table, table_format: str) -> bytes:
    """``table`` written in a format the PZ Server reads."""
    if table_format == "csv":
        import pyarrow.csv as pacsv

        sink = io.BytesIO()
        pacsv.write_csv(table, sink)
        return sink.getvalue()
    if table_format == "parquet":
        sink = io.BytesIO()
        pq.write_table(table, sink)
        return sink.getvalue()
    from astropy.table import Table

    astropy_table = Table({name: table.column(name).to_numpy() for name in table.column_names})
    sink = io.BytesIO()
    if table_format == "fits":
        astropy_table.write(sink, format="fits")
    elif table_format == "votable":
        astropy_table.write(sink, format="votable")
    elif table_format == "hdf5":
        import h5py

        with h5py.File(sink, "w") as h5file:
            for name in table.column_names:
                h5file[name] = table.column(name).to_numpy()
    return sink.getvalue()


def create_product(server, headers: dict[str, str], name: str = "DESI spec-z", **fields) -> dict:
    """A product made through the API as the pzserver client makes it."""
    body = {
        "display_name": name,
        "product_type": 1,
        "release": None,
        "official_product": False,
        "pz_code": None,
        "description": None,
        "status": 0,
        **fields,
    }
    response = server.client.post(f"{API}/products/", headers=headers, json=body)
    assert response.status_code == 201, response.text
    return response.json()


def upload(server, headers: dict[str, str], product_id: int, name: str, content: bytes, role: int = 0):
    """POST product-files/ as the client does (multipart: product, role, type + file)."""
    return server.client.post(
        f"{API}/product-files/",
        headers=headers,
        data={"product": str(product_id), "role": str(role), "type": "application/octet-stream"},
        files={"file": (name, content)},
    )


def published_specz(server, headers: dict[str, str], name: str = "DESI spec-z", **fields) -> dict:
    """A redshift catalog uploaded as CSV, registered, associated (RA, Dec, z) and published."""
    product = create_product(server, headers, name, **fields)
    assert upload(server, headers, product["id"], "specz.csv", table_bytes(specz_table(), "csv")).status_code == 201
    columns = server.client.get(f"{API}/products/{product['id']}/registry/", headers=headers).json()["columns"]
    ids = {column["column_name"]: column["id"] for column in columns}
    for column, alias, ucd in (("ra", "RA", "pos.eq.ra;meta.main"), ("dec", "Dec", "pos.eq.dec;meta.main"),
                               ("z", "z", "src.redshift")):
        response = server.client.patch(f"{API}/product-contents/{ids[column]}/", headers=headers,
                                       data={"ucd": ucd, "alias": alias})
        assert response.status_code == 200, response.text
    response = server.client.patch(f"{API}/products/{product['id']}/", headers=headers, data={"status": "1"})
    assert response.status_code == 200, response.text
    return response.json()


def published_compiled_specz(server, headers: dict[str, str], name: str, *, survey_column: bool) -> dict:
    """A user's own spec-z catalog, named as they like, with a quality flag and (if asked) its survey column
    associated: rows of VVDS, JADES and a survey of theirs with no flag translation."""
    table = specz_table(6).append_column("quality", pa.array(["4", "A", "9", "3", "B", "9"])).append_column(
        "origin", pa.array(["VVDS", "JADES", "Mine", "VVDS", "JADES", "Mine"]))
    product = create_product(server, headers, name)
    assert upload(server, headers, product["id"], "compiled.parquet", table_bytes(table, "parquet")).status_code == 201
    columns = server.client.get(f"{API}/products/{product['id']}/registry/", headers=headers).json()["columns"]
    ids = {column["column_name"]: column["id"] for column in columns}
    roles = [("ra", "RA"), ("dec", "Dec"), ("z", "z"), ("quality", "z_flag")]
    for column, alias in [*roles, *([("origin", "survey")] if survey_column else [])]:
        response = server.client.patch(f"{API}/product-contents/{ids[column]}/", headers=headers, data={"alias": alias})
        assert response.status_code == 200, response.text
    response = server.client.patch(f"{API}/products/{product['id']}/", headers=headers, data={"status": "1"})
    assert response.status_code == 200, response.text
    return response.json()
