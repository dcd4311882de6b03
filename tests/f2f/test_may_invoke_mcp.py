"""The MCP operator tools set may_invoke as the REST API does: anything but [] needs invoke too."""

from __future__ import annotations

from tests.helpers import Orvad
from tests.mcp.test_mcp import _key, _session
from tests.mcp.test_operator_tools import _name, _ok, _refused


async def test_mcp_tools_set_may_invoke_only_with_the_invoke_permission(orvad: Orvad) -> None:
    fn = _name("mi-mcp")
    with orvad.admin() as api:
        assert api.post("/api/v1/functions", json={"name": fn, "runtime": "python"}).status_code == 201
    try:
        async with _session(orvad, _key(orvad, "read", "write")) as s:
            error = await _refused(s, "update_function", {"function": fn, "may_invoke": ["*"]}, "FORBIDDEN")
            assert error["details"] == {"required": "invoke", "field": "may_invoke"}, error
            args = {"name": _name("mi-mcp2"), "runtime": "python", "may_invoke": ["x"]}
            await _refused(s, "create_function", args, "FORBIDDEN")
            assert (await _ok(s, "update_function", {"function": fn, "may_invoke": []}))["may_invoke"] == []
        async with _session(orvad, _key(orvad, "read", "write", "invoke")) as s:
            done = await _ok(s, "update_function", {"function": fn, "may_invoke": ["other"]})
            assert done["may_invoke"] == ["other"]
            await _refused(s, "update_function", {"function": fn, "may_invoke": ["Bad"]}, "VALIDATION")
    finally:
        with orvad.admin() as api:
            api.delete(f"/api/v1/functions/{fn}")
