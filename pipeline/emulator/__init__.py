"""emulator stage: a local stand-in for api.github.com.

``pipeline.emulator.server`` runs a real HTTP server (``EmulatorConfig``, ``Emulator``,
``run_emulator``) serving deterministic synthetic issues of the six ONNX converters'
repositories (pytorch/pytorch, onnx/tensorflow-onnx, PaddlePaddle/Paddle2ONNX,
onnx/sklearn-onnx, ENOT-AutoDL/onnx2torch, onnx/onnx-tensorflow; ``pipeline.emulator.data``)
in GitHub's JSON shapes (``pipeline.emulator.render``), with GitHub's pagination, conditional
requests, rate limits and injectable faults; ``pipeline.emulator.corpus`` reads files of real
issues that it serves beside or instead of the synthetic ones. ``pipeline.emulator.replay``
parses PyGithub's recordings of the real API, which the tests use to check those shapes.
CLI: ``mine emulate``.
"""
