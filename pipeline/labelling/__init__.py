"""labelling stage: the local labelling web tool and its interop (Label Studio).

Modules: ``storage`` (append-only ``labels/<rater>.jsonl``), ``queue`` (what to label, in which
order; adjudication disagreements), ``issues`` (what the page shows about an issue), ``render``
(Markdown to sanitized HTML), ``app`` (Starlette app), ``serve`` (uvicorn on a bound socket),
``sessions`` (sessions from CLI options), ``labelstudio`` (Label Studio config and tasks out),
``labelstudio_import`` (annotations back, one label file per annotator), ``labelstudio_sync``
(live push/pull with a Label Studio server through its SDK),
``commands`` (the CLI). A small store of made-up issues for trying it: ``tests/label_store.py``.
"""
