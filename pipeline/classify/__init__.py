"""classify stage: issue texts, cached sentence embeddings, calibrated per-dimension classifiers.

Public API (see ``pipeline/classify/README.md``):

- :func:`pipeline.classify.titles.record_titles` — store ``(url, title)`` pairs (study import).
- :func:`pipeline.classify.text.build_issue_text`, :func:`pipeline.classify.text.texts_for`.
- :class:`pipeline.classify.embed.Embedder`, :func:`pipeline.classify.embed.embed_texts`.
- :class:`pipeline.classify.model.IssueModel`, :class:`pipeline.classify.model.DimensionClassifier`.
- :func:`pipeline.classify.evaluate.cross_val_predictions`, :func:`pipeline.classify.evaluate.evaluate`.
- :func:`pipeline.classify.predict.classify_issues`, :func:`pipeline.classify.predict.predictions_for`.
"""
