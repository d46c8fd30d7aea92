-- wrk script for bench/run.mjs: every request carries the next session cookie from a file
-- (one header value per line; the header is "Cookie" unless a second argument names another,
-- e.g. "Authorization" for API keys), so a run rotates through a pool of sessions.
-- Requests are formatted once, in init, so the generator spends nothing per request.
local requests, n, i = {}, 0, 0

function init(args)
  local name = args[2] or "Cookie"
  for line in io.lines(args[1]) do
    n = n + 1
    requests[n] = wrk.format(nil, nil, { [name] = line })
  end
  -- threads start at different places in the pool
  i = math.random(n) - 1
end

function request()
  i = i + 1
  if i > n then i = 1 end
  return requests[i]
end

-- the whole latency histogram, for percentiles over several runs pooled:
-- "HIST <µs>:<count> <µs>:<count> …", one line on stdout
function done(summary, latency, requests)
  local parts = {}
  for k = 1, #latency do
    local us, count = latency(k)
    parts[k] = us .. ":" .. count
  end
  io.write("HIST ", table.concat(parts, " "), "\n")
end
