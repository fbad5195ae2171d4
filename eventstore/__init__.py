"""TEMPORARY stub until the SQLite ledger lands."""
from statemachine.testing import ListLedger
class EventStore(ListLedger):
    def __init__(self, path=None, **kw):
        super().__init__(); self.path = path
