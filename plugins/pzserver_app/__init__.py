"""The PZ Server web app mounted in the Airflow api-server: the REST API of LIneA's PZ Server and its pages.

Modules: ``app`` builds the FastAPI app; ``context`` opens the registry and the object store from the platform
settings; ``auth`` authenticates every request (API tokens, Airflow JWTs); ``bodies`` and ``queries`` read
request bodies and query strings; ``schemas`` turns registry records into the JSON the ``pzserver`` client
reads; ``rendering`` renders the pages (``templates/``, ``static/``); ``routes_*`` hold the handlers, which only
translate HTTP to ``pzlib.registry`` calls and back.
"""
