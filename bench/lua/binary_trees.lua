-- binary_trees.lua -- the classic allocation benchmark: many short-lived
-- binary trees of tiny tables, beside one long-lived tree.
--
-- Usage: lua binary_trees.lua [max_depth]   (default 15)
-- Every node is a table: a leaf is {}, an inner node {left, right}, whose
-- array part grows by realloc.  Self-check: a tree of depth d has
-- 2^(d+1) - 1 nodes, whatever the allocator did.

local N = tonumber(arg and arg[1]) or 15
local MIN_DEPTH = 4
local max_depth = math.max(MIN_DEPTH + 2, N)

local function bottom_up(depth)
  if depth == 0 then return {} end
  depth = depth - 1
  return { bottom_up(depth), bottom_up(depth) }
end

local function item_check(tree)
  if tree[1] then
    return 1 + item_check(tree[1]) + item_check(tree[2])
  end
  return 1
end

local function expect(got, want, what)
  if got ~= want then
    error(string.format("binary_trees: %s: got %d, want %d", what, got, want))
  end
end

local total = 0

local stretch = max_depth + 1
local check = item_check(bottom_up(stretch))
expect(check, 2 ^ (stretch + 1) - 1, "stretch tree")
total = total + check

local long_lived = bottom_up(max_depth)

for depth = MIN_DEPTH, max_depth, 2 do
  local iterations = 2 ^ (max_depth - depth + MIN_DEPTH)
  check = 0
  for _ = 1, iterations do
    check = check + item_check(bottom_up(depth))
  end
  expect(check, iterations * (2 ^ (depth + 1) - 1),
         string.format("%d trees of depth %d", iterations, depth))
  total = total + check
end

check = item_check(long_lived)
expect(check, 2 ^ (max_depth + 1) - 1, "long-lived tree")
total = total + check

print(string.format("binary_trees %d checksum %d", N, total))
