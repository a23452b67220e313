package taskexec

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the Prometheus counters of the tasks of one TaskManager.
type Metrics struct {
	RecordsIn  *prometheus.CounterVec
	RecordsOut *prometheus.CounterVec
}

// NewMetrics registers the task counters with reg:
// weir_task_records_in_total and weir_task_records_out_total, labelled
// {job, operator (the chain's operator ids joined with " -> "), subtask}.
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
	}
	for _, c := range []prometheus.Collector{m.RecordsIn, m.RecordsOut} {
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
}
