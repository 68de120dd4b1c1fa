package handlers

// WriteEvent is writeEvent, for the tests outside the package, which read
// its output with the strict reader of internal/testkit.
var WriteEvent = writeEvent

// RouteAction is routeAction, for the tests outside the package.
var RouteAction = routeAction

// UnknownAction is the audit action of a path with no entry in the table.
const UnknownAction = unknownAction

// Route is one registered route.
type Route struct{ Method, Path string }

// Routes returns every route the server registers, middleware left out.
func (s *Server) Routes() []Route {
	var list []Route
	for _, r := range s.app.GetRoutes(true) {
		list = append(list, Route{Method: r.Method, Path: r.Path})
	}
	return list
}
