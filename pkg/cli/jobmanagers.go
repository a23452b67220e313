package cli

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/spf13/cobra"

	"github.com/weirstream/weir/proto/weirpb"
)

func (a *app) newJobManagersCommand() *cobra.Command {
	var out outputFormat
	cmd := &cobra.Command{
		Use:     "jobmanagers",
		Aliases: []string{"jm", "jms"},
		Short:   "List the JobManagers of the cluster: which one leads, which stand by",
		Long: `List every JobManager of the cluster, from any of them (a standby answers
too): its address, its role (leader or standby) and since when it has it.`,
		Example: "  weir --jobmanager host1:6123,host2:6123 jobmanagers\n  weir jobmanagers -o json",
		Args:    cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			var resp *weirpb.ListJobManagersResponse
			err := a.call(cmd.Context(), a.timeout, func(ctx context.Context, c weirpb.JobServiceClient) (err error) {
				resp, err = c.ListJobManagers(ctx, &weirpb.ListJobManagersRequest{})
				return err
			})
			if err != nil {
				return err
			}
			jms := slices.Clone(resp.GetJobmanagers())
			slices.SortStableFunc(jms, func(x, y *weirpb.JobManagerInfo) int { return cmp.Compare(x.GetAddress(), y.GetAddress()) })
			if out == outputJSON {
				return writeJSON(a.stdout, toJobManagersJSON(jms))
			}
			if len(jms) == 0 {
				fmt.Fprintln(a.stderr, "No JobManagers.")
				return nil
			}
			t := newTable(a.stdout, "ADDRESS", "ROLE", "SINCE")
			for _, jm := range jms {
				role := "standby"
				if jm.GetLeader() {
					role = "leader"
				}
				t.row(orDash(jm.GetAddress()), role, humanTime(jm.GetSinceUnixMs(), a.loc))
			}
			return t.flush()
		}),
	}
	addOutputFlag(cmd, &out)
	return cmd
}
