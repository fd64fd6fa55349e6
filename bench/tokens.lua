-- wrk script used by bench/compare for every target:
--
--   wrk -t1 -c32 -d10s --latency -s bench/tokens.lua URL -- TOKEN_FILE [SEQ [SKIP]]
--
-- Every request carries `Authorization: Bearer <token>`, the tokens taken in
-- turn from TOKEN_FILE (one per line). SEQ is how many tokens earlier runs
-- used, so consecutive runs walk on through the file instead of replaying its
-- head. After the last line the walk starts over at line SKIP + 1: the first
-- SKIP lines are used once only. A file with one line sends the same token
-- every time.
--
-- The requests are formatted once, in init (before wrk's clock starts), so the
-- per-request cost in wrk is the same small computation and one table lookup
-- for every target and every file.

local requests = {}
local count = 0
local seq = 0
local skip = 0

function init(args)
  local path = args[1]
  if not path then
    error("usage: wrk ... -s tokens.lua URL -- TOKEN_FILE [SEQ [SKIP]]")
  end
  for line in io.lines(path) do
    if #line > 0 then
      count = count + 1
      -- wrk.format uses the table it is given instead of wrk.headers (-H): copy them in.
      local headers = {}
      for name, value in pairs(wrk.headers) do
        headers[name] = value
      end
      if line:sub(1, 8) == "Cookie: " then
        -- A signed-in browser (bench/compare's session.txt): its session cookie.
        headers.Cookie = line:sub(9)
      else
        headers.Authorization = "Bearer " .. line
      end
      requests[count] = wrk.format(nil, nil, headers)
    end
  end
  if count == 0 then
    error("no tokens in " .. path)
  end
  seq = tonumber(args[2]) or 0
  skip = tonumber(args[3]) or 0
  if skip >= count then
    error("SKIP must be smaller than the number of tokens")
  end
end

function request()
  local i
  if seq < count then
    i = seq + 1
  else
    i = skip + (seq - count) % (count - skip) + 1
  end
  seq = seq + 1
  return requests[i]
end
