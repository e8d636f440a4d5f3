-- wrk script for bench/api.py: POST /users, each request with an email never used before, so
-- every response is a 201 and none a 409. The email is made of a tag unique to this wrk run
-- (first argument after `--`), the thread's number and a per-thread counter.
local created = 0
local tag
local headers = { ["Content-Type"] = "application/json" }
local threads = 0

function setup(thread)
  -- Runs in wrk's main Lua state; gives each thread's own state its number.
  threads = threads + 1
  thread:set("thread_number", threads)
end

function init(args)
  tag = args[1]
  if not tag then
    error("usage: wrk ... -s wrk_post_user.lua URL -- RUN_TAG")
  end
end

function request()
  created = created + 1
  local body = string.format(
    '{"name":"bench user %d","email":"%s-t%d-%d@bench.example.com"}',
    created, tag, thread_number, created
  )
  return wrk.format("POST", "/users", headers, body)
end
