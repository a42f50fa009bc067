"""ORM models, one module per aggregate; may import core only."""
