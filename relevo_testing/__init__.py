"""What the tests and the benchmarks share: a real Relevo server, payload builders, free ports.

It lives outside ``reports/tests`` and ``agent/tests`` so that ``bench/``
never imports test modules, and outside ``reports`` so that the server
(and the Docker image, which copies ``reports/``) never ships it.
"""
