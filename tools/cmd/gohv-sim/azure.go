package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/gohv/gohv/kernel"
	"github.com/gohv/gohv/tools/hvsim/simhost"
)

// showAzure waits for the kernel's agentless provisioning (started on its
// own when the lease carried option 245) and shows what the guest and the
// simulated fabric saw.
func showAzure(ctx context.Context, w io.Writer, k *kernel.Kernel, m *simhost.Machine) error {
	if m.Azure == nil {
		return nil
	}
	p := k.Azure()
	if p == nil {
		return errors.New("guest: the lease named a WireServer but the kernel started no provisioning")
	}
	select {
	case <-p.Done():
	case <-ctx.Done():
		return fmt.Errorf("guest: Azure provisioning: %w", ctx.Err())
	}
	res, _ := p.Result()
	if res.ReadyErr != nil {
		return fmt.Errorf("guest: Azure ready report: %w", res.ReadyErr)
	}
	if res.MetadataErr != nil {
		return fmt.Errorf("guest: Azure instance metadata: %w", res.MetadataErr)
	}
	fmt.Fprintf(w, "guest: Azure: Ready reported for goal state incarnation %s\n", res.GoalState.Incarnation)
	in := res.Instance
	fmt.Fprintf(w, "guest: Azure: VM %s (%s) in %s, computer name %s\n", in.Name, in.VMSize, in.Location, in.ComputerName)
	_, posts, reports := m.Azure.Wire.Counts()
	for _, r := range reports {
		fmt.Fprintf(w, "host: WireServer accepted a health report: %s for incarnation %s (%d post(s))\n", r.Container.Role.State, r.Incarnation, posts)
	}
	if v := m.Azure.Wire.ProtocolViolations(); len(v) > 0 {
		return fmt.Errorf("host: WireServer protocol violations: %q", v)
	}
	return nil
}
