package engine

import "fmt"

// ParamError is a problem with one parameter of a resource, as its
// Validate reports it: a frontend finds Param among the keys it decoded
// and points at that key's line. Validate may return several joined with
// errors.Join.
type ParamError struct {
	// Param is the parameter's name as the graph writes it (its YAML key).
	Param string
	// Err says what is wrong with it.
	Err error
}

func (e *ParamError) Error() string { return e.Param + ": " + e.Err.Error() }

func (e *ParamError) Unwrap() error { return e.Err }

// ParamErrorf returns a *ParamError for param whose Err is
// fmt.Errorf(format, args...) (so %w wraps).
func ParamErrorf(param, format string, args ...any) error {
	return &ParamError{Param: param, Err: fmt.Errorf(format, args...)}
}
