-- HTTP/1.1 pipelining for wrk, for `benches/http_load.rs`:
-- `wrk -s benches/peers/pipeline.lua URL -- DEPTH` (DEPTH defaults to 16).
--
-- Each connection writes DEPTH copies of the request (`wrk.format()`: GET of the URL's path,
-- with a Host header) in one write, and writes the next batch once all DEPTH responses are in.
-- wrk counts every response in `requests` and `Requests/sec`, but records one latency sample
-- per batch: the time from the batch's write to its last response.

init = function(args)
  local depth = tonumber(args[1]) or 16
  local batch = {}
  for i = 1, depth do
    batch[i] = wrk.format()
  end
  pipelined = table.concat(batch)
end

request = function()
  return pipelined
end
