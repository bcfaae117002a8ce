"""classify stage: issue documents, features (cached sentence embeddings, hashed n-grams), calibrated
per-dimension classifiers, the model file, which model to use.

Public API (see ``pipeline/classify/README.md``); later stages import from
:mod:`pipeline.classify.interface` only:

- :func:`pipeline.classify.text.issue_docs` — the one text policy; :func:`pipeline.classify.text.build_issue_text`.
- :func:`pipeline.classify.features.build_features` under a :class:`~pipeline.classify.features.FeatureSpec`.
- :class:`pipeline.classify.embed.Embedder`, :func:`pipeline.classify.embed.embed_texts`.
- :class:`pipeline.classify.model.IssueModel` (save / load: ``model.json`` + ``arrays.npz``).
- :func:`pipeline.classify.train.train_model`, :func:`pipeline.classify.evaluate.evaluate`.
- :func:`pipeline.classify.predict.classify_issues`, :func:`pipeline.classify.predict.predictions_for`.
- :func:`pipeline.classify.resolve.choose_model`, :func:`pipeline.classify.resolve.shipped_model_dir`.
"""
