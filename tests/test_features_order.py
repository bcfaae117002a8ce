"""build_features, whose texts the embedder batches by length (cheaper batches), still gives each issue its own vectors."""

from __future__ import annotations

import numpy as np

from pipeline.classify.embed import Embedder
from pipeline.classify.features import FeatureSpec, build_features, text_part
from pipeline.classify.text import IssueDoc, token_counter

LONG = ("Exporting the model fails after the upgrade; the log follows. " * 40
        + "\n```\nRuntimeError: ONNX export failed: Couldn't export operator aten::unfold\n```\n")


def test_rows_stay_aligned_with_their_issues():
    embedder = Embedder()
    count = token_counter(embedder.path)
    spec = FeatureSpec(blocks=("title", "text"))
    docs = [IssueDoc("https://github.com/o/r/issues/1", "Unfold is not supported", LONG, ("same here",), "full"),
            IssueDoc("https://github.com/o/r/issues/2", "tf2onnx hangs"),
            IssueDoc("https://github.com/o/r/issues/3", "Wrong output after conversion", "short body", (), "full")]
    f = build_features(docs, spec, embedder, None, progress=False)
    for i, d in enumerate(docs):
        alone = [embedder.encode([s])[0] for s in (d.title, text_part(d, spec, count))]
        np.testing.assert_allclose(f.dense[i, :384], alone[0], atol=1e-5)
        np.testing.assert_allclose(f.dense[i, 384:], alone[1] / np.linalg.norm(alone[1]), atol=1e-5)
