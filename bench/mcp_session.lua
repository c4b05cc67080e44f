-- wrk script: new-session cost. Each connection alternates
--   POST initialize            -> 200 + Mcp-Session-Id (queued on the thread)
--   POST notifications/initialized with a queued session id -> 202
-- A "pair" is one initialize followed by its notifications/initialized (counted at the 202).
--
--   wrk -t1 -c1 -d5s -s bench/mcp_session.lua http://127.0.0.1:PORT/mcp -- VERSION

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  version = args[1] or "2025-11-25"
  ready = {}
  inits = 0
  pairs_done = 0
  failures = 0
  init_hdrs = {
    ["Content-Type"] = "application/json",
    ["Accept"] = "application/json, text/event-stream",
  }
  init_body = '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"' .. version ..
    '","capabilities":{},"clientInfo":{"name":"wrk-bench","version":"1"}}}'
  notif_body = '{"jsonrpc":"2.0","method":"notifications/initialized"}'
end

function request()
  local sid = table.remove(ready)
  if sid ~= nil then
    local h = {
      ["Content-Type"] = "application/json",
      ["Accept"] = "application/json, text/event-stream",
      ["Mcp-Session-Id"] = sid,
      ["MCP-Protocol-Version"] = version,
    }
    return wrk.format("POST", nil, h, notif_body)
  end
  return wrk.format("POST", nil, init_hdrs, init_body)
end

function response(status, headers, body)
  if status == 200 then
    local sid = nil
    for k, v in pairs(headers) do
      if string.lower(k) == "mcp-session-id" then sid = v end
    end
    if sid ~= nil and string.find(body, '"protocolVersion"', 1, true) then
      inits = inits + 1
      table.insert(ready, sid)
    else
      failures = failures + 1
    end
  elseif status == 202 then
    pairs_done = pairs_done + 1
  else
    failures = failures + 1
  end
end

function done(summary, latency, requests)
  local i, p, f = 0, 0, 0
  for _, t in ipairs(threads) do
    i = i + (t:get("inits") or 0)
    p = p + (t:get("pairs_done") or 0)
    f = f + (t:get("failures") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'MCPBENCH {"requests":%d,"duration_us":%d,"inits":%d,"pairs":%d,"failures":%d,' ..
    '"p50_us":%d,"p99_us":%d,"mean_us":%.1f,"err_connect":%d,"err_read":%d,"err_write":%d,"err_timeout":%d}\n',
    summary.requests, summary.duration, i, p, f,
    latency:percentile(50), latency:percentile(99), latency.mean,
    e.connect, e.read, e.write, e.timeout))
end
