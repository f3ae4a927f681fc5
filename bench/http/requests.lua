-- wrk script for bench/http/run.py: each thread takes its own share of the prepared items
-- (one a line) and sends them in order, so single-use items (codes, refresh tokens, client
-- assertions) are never sent twice. Arguments after "--": FILE METHOD PATH MODE THREADS
-- MODE: "none" (no item), "body" (the item is the form body), "bearer" (Authorization:
-- Bearer ITEM), "basic-body" (the line is "AUTHORIZATION<TAB>BODY").

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  file, method, path, mode, nthreads = args[1], args[2], args[3], args[4], tonumber(args[5])
  items, counter = {}, 0
  if mode ~= "none" then
    local index = 0
    for line in io.lines(file) do
      if index % nthreads == id then table.insert(items, line) end
      index = index + 1
    end
  end
  headers = {}
  if method == "POST" then headers["Content-Type"] = "application/x-www-form-urlencoded" end
end

function request()
  if mode == "none" then return wrk.format(method, path, headers) end
  counter = counter + 1
  local item = items[((counter - 1) % #items) + 1]
  if mode == "body" then return wrk.format(method, path, headers, item) end
  if mode == "bearer" then
    headers["Authorization"] = "Bearer " .. item
    return wrk.format(method, path, headers)
  end
  local tab = string.find(item, "\t", 1, true)
  headers["Authorization"] = string.sub(item, 1, tab - 1)
  return wrk.format(method, path, headers, string.sub(item, tab + 1))
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"non_2xx":%d,"socket_errors":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, errors.status, errors.connect + errors.read + errors.write + errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
