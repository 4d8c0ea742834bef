"""Networks: text encoder, item tower, user tower, scoring head, losses."""
