"""SQL for the AI assistant's settings, conversations, messages and tool calls (issue 22, migration 0011).

Rows are few (one per message or tool call, a few updates each) and each must be on disk when the turn
says it happened, so they are written directly, not through the batched writer. Rows come back as
plain dicts (column -> value); orvad/assistant/service.py shapes them for the API.
"""

from __future__ import annotations

from typing import Any

from orvad.clock import now_iso
from orvad.store.sql import Database

Row = dict[str, Any]

_CONV = "id, title, archived, provider_id, model, input_tokens, output_tokens, created_at, updated_at"
_MSG = (
    "id, conversation_id, seq, role, content, thinking, thinking_signature, status, error, provider_id, model, "
    "input_tokens, output_tokens, created_at"
)
_CALL = (
    "id, conversation_id, message_id, seq, provider_call_id, name, arguments, status, result, is_error, "
    "created_at, resolved_at"
)


def _dicts(rows: list[Any]) -> list[Row]:
    return [dict(r) for r in rows]


class AssistantStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # ---- settings (one row) ----

    async def settings(self) -> Row:
        row = await self._db.fetchone(
            "SELECT provider_id, model, thinking, approval_policy, max_tool_steps, updated_at "
            "FROM ai_settings WHERE id = 1"
        )
        assert row is not None, "migration 0011 inserts the settings row"
        return dict(row)

    async def save_settings(self, values: Row) -> None:
        await self._db.execute(
            "UPDATE ai_settings SET provider_id = ?, model = ?, thinking = ?, approval_policy = ?, "
            "max_tool_steps = ?, updated_at = ? WHERE id = 1",
            (
                values["provider_id"],
                values["model"],
                values["thinking"],
                values["approval_policy"],
                values["max_tool_steps"],
                now_iso(),
            ),
        )

    # ---- conversations ----

    async def create_conversation(
        self, conv_id: str, title: str, provider_id: str | None, model: str | None
    ) -> None:
        now = now_iso()
        await self._db.execute(
            "INSERT INTO ai_conversations (id, title, provider_id, model, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (conv_id, title, provider_id, model, now, now),
        )

    async def conversations(self, *, archived: bool | None, before: str | None, limit: int) -> list[Row]:
        """Most recently updated first; ``before``: the (updated_at, id) cursor of the last one seen."""
        where: list[str] = ["1 = 1"]
        params: list[Any] = []
        if archived is not None:
            where.append("archived = ?")
            params.append(int(archived))
        if before is not None:
            updated, _, last_id = before.partition("|")
            where.append("(updated_at < ? OR (updated_at = ? AND id < ?))")
            params += [updated, updated, last_id]
        rows = await self._db.fetchall(
            f"SELECT {_CONV} FROM ai_conversations WHERE {' AND '.join(where)} "
            "ORDER BY updated_at DESC, id DESC LIMIT ?",
            (*params, limit),
        )
        return _dicts(rows)

    async def conversation(self, conv_id: str) -> Row | None:
        row = await self._db.fetchone(f"SELECT {_CONV} FROM ai_conversations WHERE id = ?", (conv_id,))
        return dict(row) if row else None

    async def update_conversation(self, conv_id: str, fields: Row) -> None:
        names = sorted(fields)
        sets = ", ".join(f"{name} = ?" for name in names)
        await self._db.execute(
            f"UPDATE ai_conversations SET {sets}, updated_at = ? WHERE id = ?",
            (*(fields[n] for n in names), now_iso(), conv_id),
        )

    async def delete_conversation(self, conv_id: str) -> bool:
        return await self._db.execute("DELETE FROM ai_conversations WHERE id = ?", (conv_id,)) == 1

    async def add_tokens(self, conv_id: str, input_tokens: int, output_tokens: int) -> None:
        await self._db.execute(
            "UPDATE ai_conversations SET input_tokens = input_tokens + ?, output_tokens = output_tokens + ?, "
            "updated_at = ? WHERE id = ?",
            (input_tokens, output_tokens, now_iso(), conv_id),
        )

    # ---- messages ----

    async def add_message(self, row: Row) -> int:
        """Insert a message at the conversation's next seq; returns that seq."""
        async with self._db.transaction() as tx:
            top = await tx.fetchone(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM ai_messages WHERE conversation_id = ?",
                (row["conversation_id"],),
            )
            seq = int(top[0]) if top is not None else 1
            await tx.execute(
                f"INSERT INTO ai_messages ({_MSG}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    row["id"],
                    row["conversation_id"],
                    seq,
                    row["role"],
                    row.get("content", ""),
                    row.get("thinking", ""),
                    "",
                    row["status"],
                    row.get("error"),
                    row.get("provider_id"),
                    row.get("model"),
                    0,
                    0,
                    now_iso(),
                ),
            )
            await tx.execute(
                "UPDATE ai_conversations SET updated_at = ? WHERE id = ?", (now_iso(), row["conversation_id"])
            )
        return seq

    async def update_message(self, message_id: str, fields: Row) -> None:
        names = sorted(fields)
        await self._db.execute(
            f"UPDATE ai_messages SET {', '.join(f'{n} = ?' for n in names)} WHERE id = ?",
            (*(fields[n] for n in names), message_id),
        )

    async def message(self, message_id: str) -> Row | None:
        row = await self._db.fetchone(f"SELECT {_MSG} FROM ai_messages WHERE id = ?", (message_id,))
        return dict(row) if row else None

    async def messages(self, conv_id: str, since_seq: int = 0) -> list[Row]:
        rows = await self._db.fetchall(
            f"SELECT {_MSG} FROM ai_messages WHERE conversation_id = ? AND seq > ? ORDER BY seq",
            (conv_id, since_seq),
        )
        return _dicts(rows)

    async def truncate(self, conv_id: str, from_seq: int) -> None:
        """Delete every message (and its tool calls) at or after ``from_seq``."""
        async with self._db.transaction() as tx:
            await tx.execute(
                "DELETE FROM ai_tool_calls WHERE conversation_id = ? AND seq >= ?", (conv_id, from_seq)
            )
            await tx.execute(
                "DELETE FROM ai_messages WHERE conversation_id = ? AND seq >= ?", (conv_id, from_seq)
            )
            await tx.execute("UPDATE ai_conversations SET updated_at = ? WHERE id = ?", (now_iso(), conv_id))

    # ---- tool calls ----

    async def add_tool_call(self, row: Row) -> None:
        await self._db.execute(
            f"INSERT INTO ai_tool_calls ({_CALL}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                row["id"],
                row["conversation_id"],
                row["message_id"],
                row["seq"],
                row["provider_call_id"],
                row["name"],
                row["arguments"],
                row["status"],
                None,
                0,
                now_iso(),
                None,
            ),
        )

    async def update_tool_call(self, call_id: str, fields: Row) -> None:
        names = sorted(fields)
        await self._db.execute(
            f"UPDATE ai_tool_calls SET {', '.join(f'{n} = ?' for n in names)} WHERE id = ?",
            (*(fields[n] for n in names), call_id),
        )

    async def tool_call(self, call_id: str) -> Row | None:
        row = await self._db.fetchone(f"SELECT {_CALL} FROM ai_tool_calls WHERE id = ?", (call_id,))
        return dict(row) if row else None

    async def tool_calls(self, conv_id: str, since_seq: int = 0) -> list[Row]:
        rows = await self._db.fetchall(
            f"SELECT {_CALL} FROM ai_tool_calls WHERE conversation_id = ? AND seq > ? ORDER BY seq, id",
            (conv_id, since_seq),
        )
        return _dicts(rows)

    async def tool_calls_of(self, message_id: str) -> list[Row]:
        rows = await self._db.fetchall(
            f"SELECT {_CALL} FROM ai_tool_calls WHERE message_id = ? ORDER BY id", (message_id,)
        )
        return _dicts(rows)

    # ---- a restart ----

    async def interrupt(self, error_json: str, result_json: str) -> tuple[int, int]:
        """At start: what a run of orvad left mid-way. A message still streaming becomes an error (its
        text so far kept); a tool call approved or running (its outcome unknown) becomes an error result.
        A call awaiting approval stays awaiting. Returns (messages, tool calls) changed."""
        now = now_iso()
        async with self._db.transaction() as tx:
            messages = await tx.execute(
                "UPDATE ai_messages SET status = 'error', error = ? WHERE status = 'streaming'", (error_json,)
            )
            calls = await tx.execute(
                "UPDATE ai_tool_calls SET status = 'error', result = ?, is_error = 1, resolved_at = ? "
                "WHERE status IN ('approved', 'running')",
                (result_json, now),
            )
        return messages, calls
