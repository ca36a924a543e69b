-- wrk script for bench/etcd.sh: POSTs to etcd's v3 JSON gateway with one distinct key per request.
--
--   wrk -t2 -c16 -d5s -s bench/etcd-kv.lua http://127.0.0.1:PORT -- OP PREFIX_B64 VALUE_B64 [KEYS]
--
-- OP is `put` (/v3/kv/put), `txn` (/v3/kv/txn: create the key if absent, the transaction meshctl sends
-- for a create) or `range` (/v3/kv/range of one key, as meshctl reads one object). PREFIX_B64 is the
-- base64 of a key prefix whose length is a multiple of 3 bytes (so it has no padding); each thread's
-- n-th request names the key PREFIX_B64 .. 2 base64 digits of the thread .. 6 base64 digits of n (a
-- whole base64 quantum more, so no base64 is computed per request). `range` reads the keys n mod KEYS,
-- which an earlier `txn` run with the same prefix wrote. At the end, prints "thread T: N" per thread:
-- the requests it generated (the ones completed, plus at most its connections in flight).

local digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local function b64digits(n, width)
  local out = {}
  for i = width, 1, -1 do
    local d = n % 64
    out[i] = digits:sub(d + 1, d + 1)
    n = (n - d) / 64
  end
  return table.concat(out)
end

function init(args)
  op, prefix, value, keys = args[1], args[2], args[3], tonumber(args[4] or "0")
  count = 0
  tag = prefix .. b64digits(id, 2)
  local paths = { put = "/v3/kv/put", txn = "/v3/kv/txn", range = "/v3/kv/range" }
  path = paths[op]
  if path == nil or (op == "range" and (keys == nil or keys < 1)) then
    error("usage: -- put|txn|range PREFIX_B64 VALUE_B64 [KEYS]")
  end
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  local n = count
  if op == "range" then
    n = count % keys
  end
  count = count + 1
  local key = tag .. b64digits(n, 6)
  local body
  if op == "put" then
    body = '{"key":"' .. key .. '","value":"' .. value .. '"}'
  elseif op == "txn" then
    body = '{"compare":[{"key":"' .. key .. '","target":"CREATE","create_revision":"0","result":"EQUAL"}],'
      .. '"success":[{"request_put":{"key":"' .. key .. '","value":"' .. value .. '"}}],"failure":[]}'
  else
    body = '{"key":"' .. key .. '"}'
  end
  return wrk.format("POST", path, nil, body)
end

function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    io.write(string.format("thread %d: %d\n", t:get("id"), t:get("count")))
  end
end
