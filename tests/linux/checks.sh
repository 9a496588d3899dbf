# The check framework for Linux scenarios, sourced by /init before the
# scenario. A scenario is a shell file of checks (tests/linux/scenarios/):
#
#   check "what must hold" command [args...]
#       passes when the command exits 0.
#   check_sigbus "what must be refused" command [args...]
#       passes when the command dies of SIGBUS (a bus error: the access was
#       aborted) and the kernel keeps running (the next check runs).
#   arg NAME
#       prints the value of NAME=... on the kernel command line.
#   dt_reg NODE
#       prints "START SIZE" (decimal) of device-tree node NODE (a
#       /proc/device-tree path) whose reg is one entry of 2 address and 2
#       size cells; fails otherwise.
#
# Each check prints one line, `linux: ok   ...` or `linux: FAIL ...`; /init
# ends with `linux: N passed, M failed`, which the test harness reads.

passed=0
failed=0

pass() {
  passed=$((passed + 1))
  echo "linux: ok   $*"
}

fail() {
  failed=$((failed + 1))
  echo "linux: FAIL $*"
}

check() {
  what=$1
  shift
  if "$@" >/tmp/check.out 2>&1; then
    pass "$what$(detail)"
  else
    fail "$what: $(tail -n 3 /tmp/check.out | tr '\n' ' ')"
  fi
}

check_sigbus() {
  what=$1
  shift
  # A subshell, so that the signal ends it and not the caller.
  ("$@") >/tmp/check.out 2>&1
  status=$?
  # The shell reports death by signal N as 128 + N; SIGBUS is 7.
  if [ "$status" -eq 135 ]; then
    pass "$what: SIGBUS"
  else
    fail "$what: exit status $status, not SIGBUS: $(tail -n 3 /tmp/check.out | tr '\n' ' ')"
  fi
}

# What a passing check printed on its last line, as ": <line>".
detail() {
  last=$(tail -n 1 /tmp/check.out)
  [ -n "$last" ] && echo ": $last"
}

arg() {
  tr ' ' '\n' </proc/cmdline | sed -n "s/^$1=//p" | tail -n 1
}

dt_reg() {
  local node=$1
  # shellcheck disable=SC2046 # one byte per word
  set -- $(od -An -v -tx1 "$node/reg")
  [ $# -eq 16 ] || { echo "$node/reg: $# bytes, expected 2+2 cells"; return 1; }
  echo $((0x$1$2$3$4$5$6$7$8)) $((0x$9${10}${11}${12}${13}${14}${15}${16}))
}

summary() {
  echo "linux: $passed passed, $failed failed"
}
