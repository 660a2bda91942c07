"""Group commit: durable one-statement writes that arrive together share one transaction.

Every durable commit on PostgreSQL waits for a WAL flush, and under the annotation loop the
submits of one process arrive many at a time. Sent one by one, each costs a round trip, a
commit and a flush, and holds its task's row lock while the flush runs. Here a process keeps
one queue: whatever arrived while the previous group was being written goes out as the next
group, in one pipelined round trip (``BEGIN``, the statements, ``COMMIT``), so the whole group
pays one flush.

A statement may join a group only when it is a unit of work on its own (the flow that sent it
does not rely on a later statement being in the same transaction) and when it locks at most
one row of the table several group members may share, given by its ``Statement.group_key``:
the group runs its statements in the order of that key, so two groups lock those rows in the
same order and cannot deadlock each other. If anything in a group fails, nothing of it is
committed and each statement is sent again on its own, so an error reaches only the flow whose
statement caused it.
"""

import asyncio
from typing import Any

import psycopg
from psycopg.pq import ExecStatus
from psycopg_pool import AsyncConnectionPool

from quorum.db.statements import Rows, Statement

# Enough to take every submit a process has in flight under heavy load, small enough that one
# group's pipeline stays short.
MAX_GROUP = 64


class GroupCommit:
    """Runs grouped statements for one process on one durable connection pool."""

    def __init__(self, pool: AsyncConnectionPool, max_group: int = MAX_GROUP) -> None:
        self.pool = pool
        self.max_group = max_group
        self._waiting: list[tuple[Statement, asyncio.Future[Rows]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.groups = 0  # how many groups were committed (for tests and diagnostics)

    async def execute(self, statement: Statement) -> Rows:
        """The statement's rows once its group is committed (or its own error)."""
        future: asyncio.Future[Rows] = asyncio.get_running_loop().create_future()
        self._waiting.append((statement, future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_groups())
        return await future

    async def _write_groups(self) -> None:
        try:
            while self._waiting:
                group = self._waiting[: self.max_group]
                del self._waiting[: self.max_group]
                await self._write(group)
        finally:
            self._writer = None

    async def _write(self, group: list[tuple[Statement, asyncio.Future[Rows]]]) -> None:
        group.sort(key=lambda item: item[0].group_key or 0)
        try:
            results = await self._together([statement for statement, _ in group])
        except Exception:  # each member is sent again alone, and gets its own error
            await asyncio.gather(*(self._alone(statement, future) for statement, future in group))
            return
        self.groups += 1
        for (_, future), rows in zip(group, results, strict=True):
            if not future.done():
                future.set_result(rows)

    async def _together(self, statements: list[Statement]) -> list[Rows]:
        async with self.pool.connection() as connection:
            cursors = [connection.cursor() for _ in statements]
            try:
                async with connection.pipeline(), connection.transaction():
                    for cursor, statement in zip(cursors, statements, strict=True):
                        await cursor.execute(statement.sql, statement.params)
                return [await rows_of(cursor) for cursor in cursors]
            finally:
                for cursor in cursors:
                    await cursor.close()

    async def _alone(self, statement: Statement, future: asyncio.Future[Rows]) -> None:
        try:
            async with self.pool.connection() as connection:
                cursor = connection.cursor()
                try:
                    await cursor.execute(statement.sql, statement.params)
                    rows = await rows_of(cursor)
                finally:
                    await cursor.close()
        except Exception as error:  # handed to the flow that sent it
            if not future.done():
                future.set_exception(error)
            return
        if not future.done():
            future.set_result(rows)


async def rows_of(cursor: psycopg.AsyncCursor[Any]) -> Rows:
    """The rows of the cursor's last statement, none for a statement without (told by the
    result status: ``cursor.description`` costs more)."""
    result = cursor.pgresult
    if result is None or result.status != ExecStatus.TUPLES_OK:
        return []
    return await cursor.fetchall()
