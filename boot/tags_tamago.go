//go:build tamago && !(linkcpuinit && linkramstart)

package boot

// The board provides cpuinit and RamStart itself; tamago's amd64 package
// defines them too unless built with these tags. Without them the link
// fails with a duplicate symbol far from the cause, so fail here instead.
var _ = gohvBoardNeedsBuildTags_linkcpuinit_linkramstart
