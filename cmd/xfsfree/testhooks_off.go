//go:build !testhooks

package main

// The released binary has no test hooks (see testhooks.go).

import (
	"time"

	"github.com/spf13/cobra"
	"github.com/xfsfree/xfsfree/cache"
)

func addTestHooks(*cobra.Command, *globalFlags) {}

func testWriteHook() func(*cache.Device) cache.WriteHook { return nil }

func testItemDelay() time.Duration { return 0 }

func startProfile() func() { return func() {} }
