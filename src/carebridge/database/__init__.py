from carebridge.database.base import Base
from carebridge.database.engine import Database

__all__ = ["Base", "Database"]
