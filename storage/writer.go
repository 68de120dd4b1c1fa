package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"deployer/onboard"
)

// maxBatch is the most writes that share one transaction, so that a long
// queue commits, and returns to its callers, in steps.
const maxBatch = 64

// errClosed is returned for a write that arrives after Close. It has the
// unavailable code, so the admin retries, because Close runs only while
// the deployer stops.
var errClosed = onboard.Errorf(onboard.EUnavailable, "The deployer is stopping: its database is closed. Try again once it is back.")

// errGoexit is returned to the callers of a batch in which a body called
// runtime.Goexit.
var errGoexit = errors.New("storage: a write body called runtime.Goexit")

// write is one caller's transaction body, queued for the writer.
type write struct {
	ctx  context.Context
	fn   func(ctx context.Context, tx *sql.Tx) error
	done chan error // buffered, receives one result
	// panicked holds what fn panicked with, to panic again in the caller.
	panicked any
	// exited records that fn called runtime.Goexit, to call it again in
	// the caller.
	exited bool
}

// writer owns the write connection. It runs the writes queued while it was
// busy in one transaction, each inside a savepoint, and commits them
// together: a commit writes the changed pages to the WAL, and that cost,
// about half of the write connection's time in the benchmark of 200
// onboardings, is then paid once per batch instead of once per write. A write whose body fails is rolled back to its savepoint
// alone. Callers get their result only after the commit, so nil means the
// write is durable, and an error means it was not made.
type writer struct {
	pool    *sql.DB
	queue   chan *write
	closing chan struct{}
	stopped chan struct{}
	once    sync.Once
	commits atomic.Int64 // transactions committed
}

func startWriter(pool *sql.DB) *writer {
	w := &writer{pool: pool, queue: make(chan *write), closing: make(chan struct{}), stopped: make(chan struct{})}
	go w.run()
	return w
}

// update runs fn in an immediate write transaction, possibly shared with
// other callers' writes, and returns once that transaction has committed or
// fn's changes have been rolled back. fn gets a context that keeps ctx's
// values but not its cancellation: a statement interrupted in a shared
// transaction would roll back the other callers' writes too. A ctx that is
// done before fn starts skips fn and returns ctx's error. A panic in fn
// reaches the caller, and so does runtime.Goexit. fn may run twice, when
// the shared transaction fails and fn runs again in one of its own, so it
// must only assign its results outside tx.
func (w *writer) update(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	req := &write{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case w.queue <- req:
	case <-w.closing:
		return errClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	err := <-req.done
	if req.panicked != nil {
		panic(req.panicked)
	}
	if req.exited {
		runtime.Goexit()
	}
	return err
}

// close stops the writer after the batch it is running, returns errClosed
// to the writes still queued, and waits until it has stopped.
func (w *writer) close() {
	w.once.Do(func() { close(w.closing) })
	<-w.stopped
}

func (w *writer) run() {
	closed := false
	defer func() {
		if closed {
			close(w.stopped)
			return
		}
		// Only runtime.Goexit in a body ends the loop otherwise, because no
		// recover stops it. Its batch's callers have their results by now,
		// so a new goroutine takes the queue over.
		go w.run()
	}()
	batch := make([]*write, 0, maxBatch)
	for {
		select {
		case req := <-w.queue:
			batch = append(batch[:0], req)
		case <-w.closing:
			w.drain()
			closed = true
			return
		}
	collect:
		for len(batch) < maxBatch {
			select {
			case req := <-w.queue:
				batch = append(batch, req)
			default:
				break collect
			}
		}
		w.commit(batch)
	}
}

// drain returns errClosed to the callers still handing over a write.
func (w *writer) drain() {
	for {
		select {
		case req := <-w.queue:
			req.done <- errClosed
		default:
			return
		}
	}
}

// commit runs a batch in one transaction and sends every caller its result.
// A shared transaction can fail as a whole, because a body left it unusable
// or the commit failed. The bodies that did not fail by themselves then run
// again, each in a transaction of its own. So one write's failure, such as
// a full disk, reaches the others only if it hits them too.
func (w *writer) commit(batch []*write) {
	errs := make([]error, len(batch))
	err := errGoexit // until runBatch returns
	defer func() {
		for i, req := range batch {
			if err != nil && errs[i] == nil {
				errs[i] = err
			}
			req.done <- errs[i]
		}
	}()
	err = w.runBatch(batch, errs)
	if err == nil || len(batch) == 1 {
		return
	}
	for i := range batch {
		if errs[i] != nil {
			continue
		}
		if err := w.runBatch(batch[i:i+1], errs[i:i+1]); err != nil && errs[i] == nil {
			errs[i] = err
		}
	}
	err = nil
}

// runBatch runs the batch's bodies, recording each one's error in errs, and
// returns an error that fails the whole batch: one from beginning or
// committing the transaction, or from a body that left it unusable.
func (w *writer) runBatch(batch []*write, errs []error) error {
	tx, err := w.pool.BeginTx(context.Background(), nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	defer tx.Rollback()
	// A batch of one needs no savepoint: its rollback is the transaction's.
	shared := len(batch) > 1
	for i, req := range batch {
		if err := req.ctx.Err(); err != nil {
			errs[i] = err
			continue
		}
		if shared {
			if _, err := tx.Exec("SAVEPOINT write"); err != nil {
				return fmt.Errorf("begin savepoint: %w", err)
			}
		}
		// A body that succeeds keeps its savepoint open, because the
		// commit releases them all. ROLLBACK TO goes back to the newest
		// savepoint of its name only.
		errs[i] = req.runBody(tx)
		if !shared || errs[i] == nil {
			continue
		}
		// A failed body's changes are undone alone. When SQLite has already
		// rolled back the whole transaction, as it does after some I/O
		// errors, the savepoint is gone and the batch fails with it.
		if _, err := tx.Exec("ROLLBACK TO write"); err != nil {
			return fmt.Errorf("roll back a failed write: %w", err)
		}
		if _, err := tx.Exec("RELEASE write"); err != nil {
			return fmt.Errorf("release savepoint: %w", err)
		}
	}
	if shared || errs[0] == nil {
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		w.commits.Add(1)
	}
	return nil
}

// runBody runs the caller's body, turning a panic into an error here and
// keeping its value for the caller. A body that calls runtime.Goexit is
// marked, for its caller to exit likewise.
func (req *write) runBody(tx *sql.Tx) (err error) {
	returned := false
	defer func() {
		if p := recover(); p != nil {
			req.panicked = p
			err = fmt.Errorf("write panicked: %v", p)
		} else if !returned {
			req.exited = true
		}
	}()
	err = req.fn(context.WithoutCancel(req.ctx), tx)
	returned = true
	return err
}
