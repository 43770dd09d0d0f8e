-- wrk script: POST /refresh with rotating refresh tokens. A refresh token works once (a second
-- use revokes its session), so each thread holds a pool of its own: BENCH_REFRESH_TOKENS
-- (comma-separated) is dealt out over the threads, a request takes a token from the pool and
-- its answer puts the rotated one back. Needs at least as many tokens as connections.
local threads = 0

function setup(thread)
  thread:set("thread_index", threads)
  threads = threads + 1
end

function init(args)
  local step = tonumber(os.getenv("BENCH_THREADS") or "2")
  pool = {}
  local i = 0
  for token in string.gmatch(os.getenv("BENCH_REFRESH_TOKENS") or "", "[^,]+") do
    if i % step == thread_index then
      table.insert(pool, token)
    end
    i = i + 1
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  local token = table.remove(pool) or "pool-exhausted"
  return wrk.format(nil, nil, nil, '{"refresh_token":"' .. token .. '"}')
end

function response(status, headers, body)
  local token = string.match(body, '"refresh_token"%s*:%s*"([^"]+)"')
  if token then
    table.insert(pool, token)
  end
end
