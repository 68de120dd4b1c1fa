package storage

import (
	"container/list"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"

	"modernc.org/sqlite"
)

// stmtCacheSize is the most prepared statements kept per connection. The
// bound matters for queries whose text varies, such as IN lists of
// different lengths.
const stmtCacheSize = 128

// openPool opens a database/sql pool on dsn whose connections keep their
// prepared statements. modernc.org/sqlite compiles the SQL text of every
// ExecContext and QueryContext afresh, and parsing took 18 % of the CPU
// time in the benchmark of 200 concurrent onboardings. A connection here
// hides the driver's ExecContext and QueryContext, so that database/sql
// prepares each statement through PrepareContext, which returns the
// connection's compiled statement for a text it has seen before.
func openPool(dsn string) (*sql.DB, error) {
	base, err := sqlite.NewConnector(dsn)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(cachingConnector{base}), nil
}

type cachingConnector struct{ driver.Connector }

func (c cachingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return newCachingConn(conn)
}

// innerConn is the set of modernc.org/sqlite connection methods that a
// cachingConn forwards, apart from the statement methods it replaces.
type innerConn interface {
	driver.Conn
	driver.ConnPrepareContext
	driver.ConnBeginTx
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

// cachingConn is one connection with its compiled statements, most recently
// used first. database/sql uses a connection from one goroutine at a time,
// so it needs no lock.
type cachingConn struct {
	inner innerConn
	bySQL map[string]*list.Element
	order *list.List // of *cachedStmt
}

func newCachingConn(conn driver.Conn) (*cachingConn, error) {
	inner, ok := conn.(innerConn)
	if !ok {
		conn.Close()
		return nil, errors.New("sqlite connection lacks a method the statement cache forwards")
	}
	return &cachingConn{inner: inner, bySQL: map[string]*list.Element{}, order: list.New()}, nil
}

var (
	_ driver.ConnPrepareContext = (*cachingConn)(nil)
	_ driver.ConnBeginTx        = (*cachingConn)(nil)
	_ driver.Pinger             = (*cachingConn)(nil)
	_ driver.SessionResetter    = (*cachingConn)(nil)
	_ driver.Validator          = (*cachingConn)(nil)
)

// Unwrap returns the driver's connection, as modernc.org/sqlite expects of
// a wrapper.
func (c *cachingConn) Unwrap() driver.Conn { return c.inner }

func (c *cachingConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

// PrepareContext returns the connection's compiled statement for query, or
// compiles and keeps it. A statement still in use, such as one whose rows a
// caller is reading while it runs the same text again, is not handed out
// twice: the second caller gets a statement of its own.
func (c *cachingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	if el, ok := c.bySQL[query]; ok {
		cs := el.Value.(*cachedStmt)
		if !cs.inUse {
			cs.inUse = true
			c.order.MoveToFront(el)
			return cs, nil
		}
		return c.inner.PrepareContext(ctx, query)
	}
	s, err := c.inner.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	inner, ok := s.(keptStmt)
	if !ok {
		return s, nil
	}
	c.evict()
	cs := &cachedStmt{inner: inner, query: query, inUse: true}
	c.bySQL[query] = c.order.PushFront(cs)
	return cs, nil
}

// evict closes the least recently used statements not in use until there is
// room for one more.
func (c *cachingConn) evict() {
	for el := c.order.Back(); el != nil && len(c.bySQL) >= stmtCacheSize; {
		prev := el.Prev()
		if cs := el.Value.(*cachedStmt); !cs.inUse {
			cs.inner.Close()
			delete(c.bySQL, cs.query)
			c.order.Remove(el)
		}
		el = prev
	}
}

// Close closes the kept statements, then the connection.
func (c *cachingConn) Close() error {
	var errs []error
	for el := c.order.Front(); el != nil; el = el.Next() {
		errs = append(errs, el.Value.(*cachedStmt).inner.Close())
	}
	c.bySQL, c.order = nil, list.New()
	return errors.Join(append(errs, c.inner.Close())...)
}

func (c *cachingConn) Begin() (driver.Tx, error) {
	return c.inner.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *cachingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.inner.BeginTx(ctx, opts)
}

func (c *cachingConn) Ping(ctx context.Context) error { return c.inner.Ping(ctx) }

func (c *cachingConn) ResetSession(ctx context.Context) error { return c.inner.ResetSession(ctx) }

func (c *cachingConn) IsValid() bool { return c.inner.IsValid() }

// cachedStmt is a kept statement. database/sql closes the statement of one
// Exec or Query when the call or its rows are done, so Close marks a kept
// statement free for the next caller.
type cachedStmt struct {
	inner keptStmt
	query string
	inUse bool
}

// keptStmt is the set of modernc.org/sqlite statement methods that a
// cachedStmt forwards.
type keptStmt interface {
	driver.Stmt
	driver.StmtExecContext
	driver.StmtQueryContext
}

func (s *cachedStmt) Close() error {
	s.inUse = false
	return nil
}

func (s *cachedStmt) NumInput() int { return s.inner.NumInput() }

func (s *cachedStmt) Exec(args []driver.Value) (driver.Result, error) {
	return s.inner.Exec(args)
}

func (s *cachedStmt) Query(args []driver.Value) (driver.Rows, error) {
	return s.inner.Query(args)
}

func (s *cachedStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	return s.inner.ExecContext(ctx, args)
}

func (s *cachedStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	return s.inner.QueryContext(ctx, args)
}
