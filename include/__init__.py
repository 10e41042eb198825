"""pzlib's data files, installed as the package ``pzlib._include`` (see pyproject.toml); read them through
``pzlib.resources.include_path``. This file makes the folder a regular package, the kind an editable install
can map to a name inside pzlib."""
