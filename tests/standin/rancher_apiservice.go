package main

// A minimal apiregistration.k8s.io/v1 APIService for the apiservices
// informer: metadata only (spec and status are kept raw in JSON and
// skipped in protobuf), decodable from both JSON and protobuf, so the
// informer can accept protobuf like Rancher's does without pulling in
// k8s.io/kube-aggregator.

import (
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
)

var apiregistrationV1 = schema.GroupVersion{Group: "apiregistration.k8s.io", Version: "v1"}

type rancherAPIService struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              json.RawMessage `json:"spec,omitempty"`
	Status            json.RawMessage `json:"status,omitempty"`
}

type rancherAPIServiceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []rancherAPIService `json:"items"`
}

func (a *rancherAPIService) DeepCopyObject() runtime.Object {
	out := &rancherAPIService{TypeMeta: a.TypeMeta}
	a.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	out.Spec = append(json.RawMessage(nil), a.Spec...)
	out.Status = append(json.RawMessage(nil), a.Status...)
	return out
}

func (l *rancherAPIServiceList) DeepCopyObject() runtime.Object {
	out := &rancherAPIServiceList{TypeMeta: l.TypeMeta}
	l.ListMeta.DeepCopyInto(&out.ListMeta)
	for i := range l.Items {
		out.Items = append(out.Items, *l.Items[i].DeepCopyObject().(*rancherAPIService))
	}
	return out
}

// Reset and Unmarshal make the types decodable by apimachinery's protobuf
// serializer (field 1 is the metadata; list items are field 2).
func (a *rancherAPIService) Reset() { *a = rancherAPIService{} }

func (a *rancherAPIService) Unmarshal(data []byte) error {
	return protoFields(data, func(num protowire.Number, b []byte) error {
		if num == 1 {
			return a.ObjectMeta.Unmarshal(b)
		}
		return nil
	})
}

func (l *rancherAPIServiceList) Reset() { *l = rancherAPIServiceList{} }

func (l *rancherAPIServiceList) Unmarshal(data []byte) error {
	return protoFields(data, func(num protowire.Number, b []byte) error {
		switch num {
		case 1:
			return l.ListMeta.Unmarshal(b)
		case 2:
			var item rancherAPIService
			if err := item.Unmarshal(b); err != nil {
				return err
			}
			l.Items = append(l.Items, item)
		}
		return nil
	})
}

// protoFields calls fn for every length-delimited field of a message and
// skips the others.
func protoFields(data []byte, fn func(num protowire.Number, b []byte) error) error {
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return fmt.Errorf("protobuf: %w", protowire.ParseError(n))
		}
		data = data[n:]
		if typ == protowire.BytesType {
			b, m := protowire.ConsumeBytes(data)
			if m < 0 {
				return fmt.Errorf("protobuf: %w", protowire.ParseError(m))
			}
			if err := fn(num, b); err != nil {
				return err
			}
			data = data[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, data)
		if m < 0 {
			return fmt.Errorf("protobuf: %w", protowire.ParseError(m))
		}
		data = data[m:]
	}
	return nil
}

// rancherScheme is client-go's scheme plus the APIService types.
var rancherScheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	s.AddKnownTypeWithName(apiregistrationV1.WithKind("APIService"), &rancherAPIService{})
	s.AddKnownTypeWithName(apiregistrationV1.WithKind("APIServiceList"), &rancherAPIServiceList{})
	metav1.AddToGroupVersion(s, apiregistrationV1)
	return s
}()

var rancherCodecs = serializer.NewCodecFactory(rancherScheme)
