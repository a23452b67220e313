package taskmanager

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weirstream/weir/pkg/network"
)

// networkCollector exports the TaskManager's network buffers and queues
// (docs/metrics.md), read from the network stack at scrape time.
type networkCollector struct {
	net       *network.Manager
	total     *prometheus.Desc
	inUse     *prometheus.Desc
	available *prometheus.Desc
	inQueue   *prometheus.Desc
	outQueue  *prometheus.Desc
}

func registerNetworkMetrics(reg prometheus.Registerer, tmID string, net *network.Manager) error {
	l := prometheus.Labels{"tm_id": tmID}
	c := &networkCollector{
		net: net,
		total: prometheus.NewDesc("weir_taskmanager_network_buffers",
			"Network buffers the TaskManager's result partitions and input gates may hold at most (allocated lazily) (Flink TotalMemorySegments).", nil, l),
		inUse: prometheus.NewDesc("weir_taskmanager_network_buffers_in_use",
			"Network buffers holding data or lent out: the total less the available (Flink UsedMemorySegments).", nil, l),
		available: prometheus.NewDesc("weir_taskmanager_network_buffers_available",
			"Network buffers that could be taken without waiting (Flink AvailableMemorySegments).", nil, l),
		inQueue: prometheus.NewDesc("weir_taskmanager_network_input_queue_length",
			"Buffers and events received by remote input channels, not yet taken by their tasks (Flink inputQueueLength, summed).", nil, l),
		outQueue: prometheus.NewDesc("weir_taskmanager_network_output_queue_length",
			"Buffers and events queued in result subpartitions, not yet taken by their consumers (Flink outputQueueLength, summed).", nil, l),
	}
	if err := reg.Register(c); err != nil {
		return fmt.Errorf("register taskmanager network metrics: %w", err)
	}
	return nil
}

func (c *networkCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.total
	ch <- c.inUse
	ch <- c.available
	ch <- c.inQueue
	ch <- c.outQueue
}

func (c *networkCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.net.BufferStats()
	g := func(d *prometheus.Desc, v int) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v))
	}
	g(c.total, s.Total)
	g(c.inUse, s.Total-s.Available)
	g(c.available, s.Available)
	g(c.inQueue, s.InputQueue)
	g(c.outQueue, s.OutputQueue)
}
