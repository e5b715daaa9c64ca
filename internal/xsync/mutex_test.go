package xsync

import (
	"runtime"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/spillway-io/spillway/internal/testwait"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitFor is testwait.For: it synchronizes on state, with a deadline only
// as a safety net.
var waitFor = testwait.For

// TestMutualExclusion: goroutines that Lock, TryLock and sometimes go Slow
// increment a plain counter; every increment survives (and -race sees the
// lock's happens-before edges).
func TestMutualExclusion(t *testing.T) {
	const goroutines, rounds = 4, 5000
	var m TryMutex
	counter := 0
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				if g%2 == 0 || !m.TryLock() {
					m.Lock()
				}
				if i%64 == 0 {
					m.Slow()
				}
				counter++
				m.Unlock()
			}
		}()
	}
	wg.Wait()
	if counter != goroutines*rounds {
		t.Fatalf("counter = %d, want %d", counter, goroutines*rounds)
	}
	if !m.TryLock() {
		t.Fatal("lock still held after every Unlock")
	}
	m.Unlock()
}

// TestSlowHolderParksLockers: behind a holder that called Slow, Lock
// parks, and the holder's Unlock wakes it with the lock free.
func TestSlowHolderParksLockers(t *testing.T) {
	var m TryMutex
	m.Lock()
	m.Slow()
	got := make(chan struct{})
	for range 2 {
		go func() {
			m.Lock()
			got <- struct{}{}
			m.Unlock()
		}()
	}
	waitFor(t, "both lockers to park", func() bool { return m.waiters.Len() == 2 })
	select {
	case <-got:
		t.Fatal("Lock returned while the lock was held")
	default:
	}
	m.Unlock()
	<-got
	<-got
	if m.waiters.Len() != 0 {
		t.Fatalf("%d lockers still parked", m.waiters.Len())
	}
}

// TestQuickHolderLockerDoesNotPark: behind a holder that did not call
// Slow, Lock spins and yields, never parks, and gets the lock after the
// release-store Unlock.
func TestQuickHolderLockerDoesNotPark(t *testing.T) {
	var m TryMutex
	m.Lock()
	got := make(chan struct{})
	go func() {
		m.Lock()
		close(got)
	}()
	for range 1000 {
		runtime.Gosched() // let the locker spin and yield for a while
		if m.waiters.Len() != 0 {
			t.Fatal("a locker parked behind a quick holder: nobody would wake it")
		}
	}
	m.Unlock()
	<-got
	m.Unlock()
}

// TestUnlockOfUnlockedPanics: misuse is loud, as sync.Mutex's is.
func TestUnlockOfUnlockedPanics(t *testing.T) {
	var m TryMutex
	defer func() {
		if recover() == nil {
			t.Fatal("Unlock of an unlocked TryMutex did not panic")
		}
	}()
	m.Unlock()
}
