"""Experiments: ideas that are not part of the product path, kept here with their tests.

Nothing in `toolkit/` imports this package, and no eval scores with it: a figure is the agent as
`toolkit run` builds it. An idea moves into `toolkit/` (a planner option, the backend's tool turn)
only once it helps the product path on a sample it was not tuned on (DESIGN.md, principle 7).

- `relevance`: lexical evidence about tool calls (does the request name a tool; does a further
  call in a list add anything). Its rules were fitted on BFCL's first 20 questions per category
  (the former `--mode gated` of the BFCL eval); on later questions the gated engine fell from 49%
  to 27% while the baseline held (issue #19).
- `grounding`: numbers in call arguments mended against the numbers the request writes (cut at a
  thousands separator, a lost minus sign); measured only on replays of those same first 20.
"""
