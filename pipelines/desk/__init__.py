"""The review desk (`ecm desk`): business staff see the findings of a run's decision gate and decide them in a
browser, in Vietnamese. A second front door beside the CLI: the decisions go through the same audited path as
`ecm decide` (pipelines/decide.py)."""
