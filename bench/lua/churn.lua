-- churn.lua -- a large live heap with churn: a cache of records, looked up
-- at random, a third of the lookups replacing the record.  Each record is
-- what a program makes together (a table, its hash part, a string and a
-- small table), so where an allocator puts objects made together shows:
-- one allocation order through mixed sizes keeps a record on a few cache
-- lines, size classes spread it over several pages.
--
-- Usage: lua churn.lua [lookups]   (default 2000000)
-- RECORDS = lookups / 10 (at least 1000): 200,000 records by default.
-- Self-check: every lookup finds a record whose fields match its key and
-- generation; the replacement count is exactly what the random stream says.

local N = tonumber(arg and arg[1]) or 2000000
local RECORDS = math.max(1000, N // 10)

local function record(key, gen)
  return { key = key, gen = gen, name = "record:" .. key, tags = { key % 3, gen } }
end

local cache = {}
for k = 1, RECORDS do cache[k] = record(k, 0) end

math.randomseed(7)
local replaced, sum = 0, 0
for i = 1, N do
  local k = math.random(RECORDS)
  local r = cache[k]
  if r.key ~= k or r.tags[1] ~= k % 3 or r.tags[2] ~= r.gen then
    error(string.format("churn: lookup %d: record %d is wrong", i, k))
  end
  sum = (sum + #r.name + r.gen) % 1000000007
  if i % 3 == 0 then
    cache[k] = record(k, r.gen + 1)
    replaced = replaced + 1
  end
end

local gens = 0
for k = 1, RECORDS do
  local r = cache[k]
  if r.name ~= "record:" .. k then error("churn: bad name at " .. k) end
  gens = gens + r.gen
end
if gens ~= replaced then error(string.format("churn: %d generations, %d replaced", gens, replaced)) end

print(string.format("churn %d checksum %d %d", N, replaced, sum))
