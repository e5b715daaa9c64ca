package spillway

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(killChildEnv) != "" {
		runKillChild() // the kill -9 test's child process; never returns
	}
	if os.Getenv(topicKillChildEnv) != "" {
		runTopicKillChild() // the topic kill -9 test's child process; never returns
	}
	if os.Getenv(delayKillChildEnv) != "" {
		runDelayKillChild() // the delayed messages' kill -9 test's child process; never returns
	}
	goleak.VerifyTestMain(m)
}
