package resources

import (
	"maps"
	"slices"
	"strconv"
	"strings"
)

// fenceEnvPrefix starts the variables that hand cmd and ifcmd the fencing
// tokens of the cluster semaphore slots their CheckApply runs under.
const fenceEnvPrefix = "GRAFT_FENCE_"

// fenceEnvName is the variable holding the token of cluster semaphore id
// (its tag without the @@): GRAFT_FENCE_ and the id upper-cased, with
// every byte outside A-Z and 0-9 turned into '_'. Ids that differ only in
// case or in such bytes ("db-1", "db_1", "DB.1") share a variable.
func fenceEnvName(id string) string {
	b := []byte(strings.ToUpper(id))
	for i, c := range b {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			b[i] = '_'
		}
	}
	return fenceEnvPrefix + string(b)
}

// fenced returns c with GRAFT_FENCE_<ID>=token in its environment for each
// cluster semaphore slot the running CheckApply holds (Runtime.Fences),
// replacing a variable of that name in Env. Ids sharing a variable: the
// one that sorts last gives the value, and a warning names them.
func (e *Exec) fenced(c command) command {
	if e.rt == nil || e.rt.Fences == nil {
		return c
	}
	fences := e.rt.Fences()
	if len(fences) == 0 {
		return c
	}
	vars := map[string]string{}
	from := map[string]string{}
	for _, id := range slices.Sorted(maps.Keys(fences)) {
		name := fenceEnvName(id)
		if prev, ok := from[name]; ok {
			e.rt.Logger.Warn("cluster semaphores share a fencing variable; it holds the token of the last",
				"variable", name, "sema", "@@"+prev, "last", "@@"+id)
		}
		vars[name], from[name] = strconv.FormatUint(fences[id], 10), id
	}
	env := c.environ()
	env = slices.DeleteFunc(env, func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		_, ours := vars[k]
		return ours
	})
	for _, name := range slices.Sorted(maps.Keys(vars)) {
		env = append(env, name+"="+vars[name])
	}
	c.env = env
	return c
}
