package resources

import (
	"testing"

	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/gapi/yamlgraph"
)

// mgmt's msg example runs with its documented meaning: the message reaches
// the journal (here a socket the test listens on in journald's place). Its
// edge from the timer has no notify, so graft warns that the ticks reach
// nothing (mgmt's msg too logs only on a refresh).
func TestMsgMgmtExampleSendsToTheJournal(t *testing.T) {
	res, err := yamlgraph.Parse("msg1.yaml", mgmtExample(t, "msg1.yaml"), NewRegistry(Deps{}))
	if err != nil {
		t.Fatal(err)
	}
	v, ok := res.Graph.Vertex(engine.ID{Kind: "msg", Name: "msg1"})
	if !ok {
		t.Fatal("msg1 is not in the graph")
	}
	socket, conn := listenJournal(t)
	v.Res.(*Msg).journal = socket
	waitConverged(t, runMgmtExample(t, res, nil))
	got, _ := readJournalEntry(t, conn)
	if got["MESSAGE"] != "mgmt logged this message" || got["PRIORITY"] != "5" {
		t.Errorf("the journal got %q", got)
	}
}
