package taskexec

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the Prometheus counters of the tasks of one TaskManager.
type Metrics struct {
	RecordsIn  *prometheus.CounterVec
	RecordsOut *prometheus.CounterVec
	// CheckpointAlignment is the alignment time of the task's last
	// checkpoint; CheckpointBytes the state size of its last acknowledged
	// checkpoint.
	CheckpointAlignment *prometheus.GaugeVec
	CheckpointBytes     *prometheus.GaugeVec
	// CheckpointInFlightBytes is the channel state (in-flight data) of its
	// last acknowledged checkpoint: 0 unless it was unaligned.
	CheckpointInFlightBytes *prometheus.GaugeVec
}

// NewMetrics registers the task metrics with reg:
// weir_task_records_in_total, weir_task_records_out_total,
// weir_task_checkpoint_alignment_seconds, weir_task_checkpoint_bytes and
// weir_task_checkpoint_inflight_bytes,
// labelled {job, operator (the chain's operator ids joined with " -> "),
// subtask}.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	labels := []string{"job", "operator", "subtask"}
	m := &Metrics{
		RecordsIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_task_records_in_total",
			Help: "Records a task read from its inputs.",
		}, labels),
		RecordsOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_task_records_out_total",
			Help: "Records a task's operator chain emitted to its outputs.",
		}, labels),
		CheckpointAlignment: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weir_task_checkpoint_alignment_seconds",
			Help: "Barrier alignment time of the task's last checkpoint (first barrier to last).",
		}, labels),
		CheckpointBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weir_task_checkpoint_bytes",
			Help: "State size of the task's last acknowledged checkpoint.",
		}, labels),
		CheckpointInFlightBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weir_task_checkpoint_inflight_bytes",
			Help: "In-flight data (input and output channel state) of the task's last acknowledged checkpoint; 0 unless it was unaligned.",
		}, labels),
	}
	for _, c := range []prometheus.Collector{m.RecordsIn, m.RecordsOut, m.CheckpointAlignment, m.CheckpointBytes, m.CheckpointInFlightBytes} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register task metrics: %w", err)
		}
	}
	return m, nil
}

// DeleteJob drops the series of a job (its tasks are gone for good).
func (m *Metrics) DeleteJob(jobID string) {
	m.RecordsIn.DeletePartialMatch(prometheus.Labels{"job": jobID})
	m.RecordsOut.DeletePartialMatch(prometheus.Labels{"job": jobID})
	m.CheckpointAlignment.DeletePartialMatch(prometheus.Labels{"job": jobID})
	m.CheckpointBytes.DeletePartialMatch(prometheus.Labels{"job": jobID})
	m.CheckpointInFlightBytes.DeletePartialMatch(prometheus.Labels{"job": jobID})
}
