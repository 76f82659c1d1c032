/* SPDX-License-Identifier: GPL-2.0 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM ich9smi

#if !defined(_ICH9SMI_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define _ICH9SMI_TRACE_H

#include <linux/tracepoint.h>

TRACE_DEFINE_ENUM(ICH9SMI_ACT_NONE);
TRACE_DEFINE_ENUM(ICH9SMI_ACT_EXIT);
TRACE_DEFINE_ENUM(ICH9SMI_ACT_SUPPRESSED);
TRACE_DEFINE_ENUM(ICH9SMI_ACT_UNICAST);
TRACE_DEFINE_ENUM(ICH9SMI_ACT_BROADCAST);

#define ich9smi_show_action(action)				\
	__print_symbolic(action,				\
			 { ICH9SMI_ACT_NONE, "store" },		\
			 { ICH9SMI_ACT_EXIT, "exit" },		\
			 { ICH9SMI_ACT_SUPPRESSED, "suppressed" },	\
			 { ICH9SMI_ACT_UNICAST, "unicast" },	\
			 { ICH9SMI_ACT_BROADCAST, "broadcast" })

TRACE_EVENT(ich9smi_apm_write,
	    TP_PROTO(unsigned int vcpu_id, u16 port, int len, u8 value,
		     int action),
	    TP_ARGS(vcpu_id, port, len, value, action),
	    TP_STRUCT__entry(__field(unsigned int, vcpu_id)
			     __field(u16, port)
			     __field(u8, len)
			     __field(u8, value)
			     __field(int, action)),
	    TP_fast_assign(__entry->vcpu_id = vcpu_id;
			   __entry->port = port;
			   __entry->len = len;
			   __entry->value = value;
			   __entry->action = action;),
	    TP_printk("vcpu %u port 0x%x len %u value 0x%02x action %s",
		      __entry->vcpu_id, __entry->port, __entry->len,
		      __entry->value, ich9smi_show_action(__entry->action))
);

TRACE_EVENT(ich9smi_inject,
	    TP_PROTO(unsigned int vcpu_id, bool broadcast,
		     unsigned int nr_vcpus),
	    TP_ARGS(vcpu_id, broadcast, nr_vcpus),
	    TP_STRUCT__entry(__field(unsigned int, vcpu_id)
			     __field(bool, broadcast)
			     __field(unsigned int, nr_vcpus)),
	    TP_fast_assign(__entry->vcpu_id = vcpu_id;
			   __entry->broadcast = broadcast;
			   __entry->nr_vcpus = nr_vcpus;),
	    TP_printk("vcpu %u %s nr_vcpus %u", __entry->vcpu_id,
		      __entry->broadcast ? "broadcast" : "unicast",
		      __entry->nr_vcpus)
);

#endif /* _ICH9SMI_TRACE_H */

#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE trace
#include <trace/define_trace.h>
