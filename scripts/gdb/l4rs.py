"""GDB helpers for the l4rs kernel (loaded by scripts/gdb/l4rs.gdb).

l4-current   the thread the kernel runs on (id, state, priority, space, saved user RIP/RSP)
l4-threads   every thread: id, state, priority, space, partner

They read the kernel's own statics (`kernel::thread::CURRENT`, `kernel::thread::THREADS`) and
TCB fields by name, so they follow the kernel's types through its debug information; a field
that does not exist (the TCB changes over time) is shown as `?`.
"""

import gdb

THREAD_TABLE = "kernel::thread::THREADS"
CURRENT = "kernel::thread::CURRENT"
TRAP_FRAME_WORDS = 22  # kernel/src/arch/x86_64/trap.rs: TrapFrame, at the top of the stack
RIP_INDEX, RSP_INDEX = 17, 20


def cell_value(v):
    """The value inside a KernelCell (a struct around an UnsafeCell) or a KernelValue (a tuple
    struct around a Cell around an UnsafeCell)."""
    for path in (("__0", "value", "value"), ("__0", "value"), ("value", "value"), ("value",)):
        try:
            x = v
            for f in path:
                x = x[f]
            return x
        except gdb.error:
            continue
    return v


def field(v, name):
    try:
        return v[name]
    except gdb.error:
        return None


def tid_text(v):
    if v is None:
        return "?"
    try:
        raw = int(v["__0"])
    except gdb.error:
        try:
            raw = int(v)
        except gdb.error:
            return str(v)
    if raw == 0:
        return "nil"
    if raw == 0xFFFFFFFFFFFFFFFF:
        return "any"
    if raw & 0x3F == 0:
        return "local:%#x" % raw
    return "%#x.%d" % (raw >> 32, raw & 0xFFFFFFFF)


def state_text(t):
    s = field(t, "state")
    if s is None:
        return "?"
    text = str(s).split("::")[-1]
    if field(t, "halted") is not None and bool(t["halted"]):
        text += ",halted"
    return text


def int_or(v, default="?"):
    try:
        return int(v)
    except (gdb.error, TypeError):
        return default


def user_frame(tcb_ptr):
    """Saved user RIP and RSP: the TrapFrame right below the TCB."""
    try:
        inf = gdb.selected_inferior()
        base = int(tcb_ptr) - TRAP_FRAME_WORDS * 8
        mem = inf.read_memory(base, TRAP_FRAME_WORDS * 8).tobytes()
        word = lambda i: int.from_bytes(mem[i * 8:i * 8 + 8], "little")
        return word(RIP_INDEX), word(RSP_INDEX)
    except (gdb.error, gdb.MemoryError):
        return None, None


def describe(tcb_ptr):
    t = tcb_ptr.dereference()
    pid = tid_text(field(t, "id"))
    prio = int_or(field(t, "priority"))
    space = field(t, "space")
    partner = field(t, "partner")
    ptext = "-"
    try:
        if partner is not None and int(partner) != 0:
            ptext = tid_text(partner.dereference()["id"])
        elif partner is None:
            # The state enum carries whom a blocked thread deals with (a handle: thread number).
            text = str(field(t, "state"))
            for key in ("no: ", "from: "):
                if key in text:
                    ptext = text.split(key, 1)[1].split(",")[0].split("}")[0].strip()
                    break
    except gdb.error:
        ptext = "?"
    return pid, state_text(t), prio, ("%#x" % int(space)) if space is not None else "?", ptext


def threads():
    """(number, TCB pointer) of every thread, from the thread table."""
    table = cell_value(gdb.parse_and_eval(THREAD_TABLE))
    n = table.type.range()[1] + 1
    ptr_type = table.type.target()
    inf = gdb.selected_inferior()
    mem = inf.read_memory(table.address, n * 8).tobytes()
    out = []
    for i in range(n):
        p = int.from_bytes(mem[i * 8:i * 8 + 8], "little")
        if p:
            out.append((i, gdb.Value(p).cast(ptr_type)))
    return out


class Current(gdb.Command):
    """Print the thread the kernel is running on (l4rs)."""

    def __init__(self):
        super().__init__("l4-current", gdb.COMMAND_USER)

    def invoke(self, arg, from_tty):
        p = cell_value(gdb.parse_and_eval(CURRENT))
        if int(p) == 0:
            print("current thread: none yet (boot)")
            return
        pid, state, prio, space, partner = describe(p)
        rip, rsp = user_frame(p)
        extra = ""
        if rip is not None:
            extra = ", user rip %#x rsp %#x" % (rip, rsp)
        print("current thread %s: %s, priority %s, space %s, partner %s, tcb %#x%s"
              % (pid, state, prio, space, partner, int(p), extra))


class Threads(gdb.Command):
    """List every thread of the l4rs kernel."""

    def __init__(self):
        super().__init__("l4-threads", gdb.COMMAND_USER)

    def invoke(self, arg, from_tty):
        cur = int(cell_value(gdb.parse_and_eval(CURRENT)))
        rows = threads()
        print("threads: %d" % len(rows))
        print("  %-12s %-16s %4s  %-20s %s" % ("thread", "state", "prio", "space", "partner"))
        for _, p in rows:
            pid, state, prio, space, partner = describe(p)
            mark = "*" if int(p) == cur else " "
            print("%s %-12s %-16s %4s  %-20s %s" % (mark, pid, state, prio, space, partner))


Current()
Threads()
