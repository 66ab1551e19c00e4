"""Why robustkit's numbers differ from the study's: one sentence per question and column.

``REASONS[(question, column)]`` explains every flagged cell of that column;
``ROW_REASONS[(question, row index, column)]`` overrides it for one row.
"""

REASONS: dict[tuple[int, str], str] = {}
ROW_REASONS: dict[tuple[int, int, str], str] = {}
