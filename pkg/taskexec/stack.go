package taskexec

import (
	"bytes"
	"runtime"
	"strconv"
)

// maxStackDump bounds the buffer for a dump of every goroutine's stack.
const maxStackDump = 64 << 20

// Stack returns the current stack of the goroutine running Run, or "" when
// Run is not running. The TaskManager logs it for a task that does not stop
// after Cancel (task.cancellation.interval): it shows where an operator
// blocks. It dumps every goroutine's stack (stopping the world) to find
// the task's: call it rarely.
func (t *Task) Stack() string {
	id := t.goid.Load()
	if id == 0 {
		return ""
	}
	return goroutineStack(id)
}

// goroutineID returns the id of the calling goroutine, as runtime.Stack
// prints it ("goroutine 42 [running]:"); 0 if it cannot be read. Go has no
// other way to tell one goroutine's stack from another's.
func goroutineID() int64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b, ok := bytes.CutPrefix(b, []byte("goroutine "))
	if !ok {
		return 0
	}
	if i := bytes.IndexByte(b, ' '); i > 0 {
		b = b[:i]
	}
	id, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return 0
	}
	return id
}

// goroutineStack returns the stack of goroutine id, "" if it has ended.
func goroutineStack(id int64) string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) || len(buf) >= maxStackDump {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	head := []byte("goroutine " + strconv.FormatInt(id, 10) + " [")
	for block := range bytes.SplitSeq(buf, []byte("\n\n")) {
		if bytes.HasPrefix(block, head) {
			return string(block)
		}
	}
	return ""
}
