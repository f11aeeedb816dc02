# Summarises scripts/bench's runs.tsv as markdown: medians and [min–max] per concurrency and
# target, then the modelgate / nginx ratios. Plain POSIX awk (mawk is enough).
# Variables (-v): hz, rounds, dur, conns, targets, machine, start, load0, rev, threads, busywarn,
# redone, dirty, other_max, audit_rows (markdown rows of the audit store's figures), delay (the
# upstream's head delay, ms).
# Re-run on kept data: awk -F'\t' -v hz=100 -v conns="1 8 32" -f summarize.awk runs.tsv

function sortn(a, n,    i, j, t) { for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t } }
function stat(key,    n, i, a, v) { # "median min max" of the values collected under key
  n = split(vals[key], a, " "); if (n == 0) return ""
  sortn(a, n)
  v = (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  return v " " a[1] " " a[n]
}
function add(key, v) { vals[key] = (key in vals) ? vals[key] " " v : v }
function commas(x,    s, neg) {
  neg = x < 0; s = sprintf("%.0f", neg ? -x : x)
  while (s ~ /[0-9][0-9][0-9][0-9]/) sub(/[0-9][0-9][0-9]($|,)/, ",&", s)
  return (neg ? "-" : "") s
}
function fmt(st, dec,    a) { # "median [min–max]"
  if (st == "") return "–"
  split(st, a, " ")
  if (dec) return sprintf("%.*f [%.*f–%.*f]", dec, a[1], dec, a[2], dec, a[3])
  return commas(a[1]) " [" commas(a[2]) "–" commas(a[3]) "]"
}
function med(st,    a) { split(st, a, " "); return a[1] }

NR == 1 { next }
{
  round = $1; c = $2; t = $3; secs = $5 / 1e6
  k = c SUBSEP t
  add(k SUBSEP "rps", $4 / secs)
  add(k SUBSEP "p50", $8); add(k SUBSEP "p99", $10)
  p50[round, c, t] = $8; p99[round, c, t] = $10; seen[round, c, t] = 1
  sock[k] += $7
  other = ($16 - $13 - $14 - $15) * 100 / hz / secs
  add(k SUBSEP "other", other < 0 ? 0 : other)
  if (t != "direct") { add(k SUBSEP "cpu", $13 * 1e6 / hz / $4); add(k SUBSEP "use", $13 * 100 / hz / secs) }
}
END {
  nt = split(targets == "" ? "direct nginx modelgate" : targets, T, " ")
  nc = split(conns, C, " ")
  for (r = 1; r <= rounds; r++) for (i = 1; i <= nc; i++) for (j = 2; j <= nt; j++)
    if (seen[r, C[i], T[j]] && seen[r, C[i], "direct"]) {
      add(C[i] SUBSEP T[j] SUBSEP "a50", p50[r, C[i], T[j]] - p50[r, C[i], "direct"])
      add(C[i] SUBSEP T[j] SUBSEP "a99", p99[r, C[i], T[j]] - p99[r, C[i], "direct"])
      if (p50[r, C[i], "direct"] > 0)
        add(C[i] SUBSEP T[j] SUBSEP "a50pct", (p50[r, C[i], T[j]] - p50[r, C[i], "direct"]) * 100 / p50[r, C[i], "direct"])
    }
  printf "**1 KiB chat request, not streamed: %s.** Medians of %s rounds of %s s per run, [min–max].\n\n", targets, rounds, dur
  if (delay > 0) printf "- the upstream waits %s ms before its response head\n", delay
  printf "- machine: %s; load average before the run: %s; started %s\n", machine, load0, start
  printf "- modelgate built from %s; %s threads when pinned to one core\n", rev, threads
  if (redone > 0) printf "- %d round(s) at one concurrency redone: processes outside the benchmark took more than %s%% of a core during a run\n", redone, other_max
  if (dirty > 0) printf "- **warning:** %d round(s) kept although other processes took more than %s%% of a core (REDO_MAX reached); see the last column\n", dirty, other_max
  if (busywarn) printf "- **warning:** the machine stayed busy past QUIET_WAIT; other processes' CPU is in the last column\n"
  printf "\n| conns | target | req/s | proxy CPU µs/req | proxy's core busy %% | req/s per core | p50 µs | p99 µs | added p50 µs | added p99 µs | others' CPU, %% of a core |\n"
  printf "|---|---|---|---|---|---|---|---|---|---|---|\n"
  for (i = 1; i <= nc; i++) for (j = 1; j <= nt; j++) {
    k = C[i] SUBSEP T[j]; cpu = stat(k SUBSEP "cpu")
    printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", C[i], T[j], fmt(stat(k SUBSEP "rps")), fmt(cpu, 2), fmt(stat(k SUBSEP "use")),
      (cpu == "" ? "–" : commas(1e6 / med(cpu))), fmt(stat(k SUBSEP "p50")), fmt(stat(k SUBSEP "p99")),
      fmt(stat(k SUBSEP "a50")), fmt(stat(k SUBSEP "a99")), fmt(stat(k SUBSEP "other"), 0)
    if (sock[k] > 0) warn = warn sprintf("- %s at %s connections: %d socket errors (connect/read/write/timeout) in all\n", T[j], C[i], sock[k])
  }
  printf "\n| conns | target | req/s per core vs nginx | added p50 µs (%% of direct p50) | added p99 µs, vs nginx's |\n|---|---|---|---|---|\n"
  for (i = 1; i <= nc; i++) for (j = 3; j <= nt; j++) {
    ng = stat(C[i] SUBSEP "nginx" SUBSEP "cpu"); mg = stat(C[i] SUBSEP T[j] SUBSEP "cpu")
    na = stat(C[i] SUBSEP "nginx" SUBSEP "a99"); ma = stat(C[i] SUBSEP T[j] SUBSEP "a99")
    if (ng == "" || mg == "") continue
    printf "| %s | %s | %.2f× | %s (%s%%) | %s vs %s |\n", C[i], T[j], med(ng) / med(mg),
      commas(med(stat(C[i] SUBSEP T[j] SUBSEP "a50"))), sprintf("%.1f", med(stat(C[i] SUBSEP T[j] SUBSEP "a50pct"))),
      commas(med(ma)), commas(med(na))
  }
  if (audit_rows != "") {
    printf "\nThe audit store over the whole run (from each gateway's /metrics):\n\n"
    printf "| gateway | events written | group commits | events per commit | mean fsync (COMMIT) ms | mean append transaction ms | async drops |\n|---|---|---|---|---|---|---|\n%s", audit_rows
  }
  if (warn != "") printf "\n%s", warn
}
