-- wrk script for bench/api.py: GET /users/{id}, the id drawn at random among the seeded users.
-- Arguments (after `--` on wrk's command line): the first and the last seeded id.
local first_id, last_id
local threads = 0

function setup(thread)
  -- Runs in wrk's main Lua state; gives each thread's own state its number.
  threads = threads + 1
  thread:set("thread_number", threads)
end

function init(args)
  first_id = tonumber(args[1])
  last_id = tonumber(args[2])
  if not first_id or not last_id then
    error("usage: wrk ... -s wrk_get_user.lua URL -- FIRST_ID LAST_ID")
  end
  -- A seed per thread, so that threads do not all ask for the same sequence of ids.
  math.randomseed(os.time() * 100 + thread_number)
end

function request()
  return wrk.format("GET", "/users/" .. math.random(first_id, last_id))
end
