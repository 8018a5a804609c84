-- The time limit unwinds the whole task, wherever the task spins: inside
-- coroutines whose resumes catch the error, nested ones each catching it
-- with pcall, wrapped ones, a pcall at the top, even `return pcall(f)`
-- with no instruction left after it.  Every spinner fails with "task N:
-- time limit exceeded"; the other task goes on.  A spinner that survives
-- gives up after 10 s and returns, and the join below says so.
local rt = require "hakrt"
local kinds = {"resume", "nested", "wrap", "pcall_main", "return_pcall", "ping_pong"}
local spinners = {}
for i, kind in ipairs(kinds) do
  spinners[i] = rt.spawn(function(kind)
    local rt = require "hakrt"
    local deadline = rt.now() + 10
    local function spin()
      local x = 0
      while rt.now() < deadline do x = x + 1 end
      return "survived"
    end
    if kind == "resume" then -- each coroutine dies, resume catches it
      while rt.now() < deadline do
        coroutine.resume(coroutine.create(function()
          local x = 0
          for j = 1, 200000 do x = x + j end
        end))
      end
    elseif kind == "nested" then -- two levels, each catching
      local function outer()
        while rt.now() < deadline do pcall(coroutine.resume, coroutine.create(spin)) end
      end
      while rt.now() < deadline do pcall(coroutine.resume, coroutine.create(outer)) end
    elseif kind == "wrap" then
      while rt.now() < deadline do pcall(coroutine.wrap(spin)) end
    elseif kind == "pcall_main" then
      while rt.now() < deadline do pcall(spin) end
    elseif kind == "return_pcall" then
      return pcall(spin)
    elseif kind == "ping_pong" then -- the stop may land in either coroutine
      local co = coroutine.wrap(function() while true do coroutine.yield() end end)
      while rt.now() < deadline do pcall(co) end
    end
    return "survived"
  end, kind)
end
local other = rt.spawn(function()
  local rt = require "hakrt"
  local n = 0
  for i = 1, 20 do rt.sleep(5) n = n + i end
  return n
end)
for i, h in ipairs(spinners) do
  local ok, err = h:join()
  assert(not ok, kinds[i] .. ": the task ran on: " .. tostring(err))
  assert(err:find("task " .. h:id() .. ": time limit exceeded", 1, true), kinds[i] .. ": " .. err)
end
local ok, n = other:join()
assert(ok and n == 210, tostring(n))
local stops = rt.stats().time_limit_stops
assert(stops == #kinds, "time_limit_stops " .. stops)
print("time_limit_coroutines ok")
