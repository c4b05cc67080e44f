-- wrk script: POST tools/call to an MCP Streamable HTTP endpoint and cross-check every reply.
--
--   wrk -t2 -c64 -d10s -s bench/mcp_call.lua http://127.0.0.1:PORT/mcp -- MODE TOOL SESSION VERSION
--
-- MODE "verify": each request carries a unique id N and arguments {"text":"mN"}; the reply must
--   carry the same id and the text "mN" for an id still outstanding on that thread (a reply for
--   another request, or a duplicate, counts as a mismatch).
-- MODE "static": the peer sends a fixed reply (nginx ceiling); only status 200 and a JSON-RPC
--   result are checked.
-- done() prints one line "MCPBENCH {json}" that bench/run.py parses.

local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  mode = args[1] or "verify"
  tool = args[2] or "diag__echo"
  session = args[3]
  version = args[4] or "2025-11-25"
  hdrs = {
    ["Content-Type"] = "application/json",
    ["Accept"] = "application/json, text/event-stream",
    ["MCP-Protocol-Version"] = version,
  }
  if session ~= nil and session ~= "" and session ~= "-" then
    hdrs["Mcp-Session-Id"] = session
  end
  outstanding = {}
  counter = 0
  base = (tid or 0) * 1000000000
  mismatches = 0
  non200 = 0
  verified = 0
  prefix = '{"jsonrpc":"2.0","id":'
  middle = ',"method":"tools/call","params":{"name":"' .. tool .. '","arguments":{"text":"m'
  -- args[5]: optional further JSON members of "arguments" (e.g. the rest of a ten-field form).
  local extra = args[5]
  if extra ~= nil and extra ~= "" and extra ~= "-" then
    suffix = '",' .. extra .. '}}}'
  else
    suffix = '"}}}'
  end
end

function request()
  counter = counter + 1
  local id = base + counter
  outstanding[id] = true
  return wrk.format("POST", nil, hdrs, prefix .. id .. middle .. id .. suffix)
end

function response(status, headers, body)
  if status ~= 200 then
    non200 = non200 + 1
    return
  end
  if mode == "static" then
    if not string.find(body, '"result"', 1, true) then
      mismatches = mismatches + 1
    else
      verified = verified + 1
    end
    return
  end
  local id = tonumber(string.match(body, '"id"%s*:%s*(%d+)'))
  local text = tonumber(string.match(body, '"text"%s*:%s*"m(%d+)"'))
  if id == nil or text == nil or text ~= id or not outstanding[id] then
    mismatches = mismatches + 1
  else
    outstanding[id] = nil
    verified = verified + 1
  end
end

function done(summary, latency, requests)
  local m, n, v = 0, 0, 0
  for _, t in ipairs(threads) do
    m = m + (t:get("mismatches") or 0)
    n = n + (t:get("non200") or 0)
    v = v + (t:get("verified") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'MCPBENCH {"requests":%d,"duration_us":%d,"mismatches":%d,"non200":%d,"verified":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f,"max_us":%d,' ..
    '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d}\n',
    summary.requests, summary.duration, m, n, v,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
